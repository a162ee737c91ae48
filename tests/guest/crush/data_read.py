# /data granted read-only (tests/vm/test_crush.py): a listing and a file, then a missing file.
import exo

print("list", exo.fs.list("/data"))
print("read", exo.fs.read("/data/in.txt").strip())
try:
    exo.fs.read("/data/missing.txt")
except FileNotFoundError as e:
    print("missing", e)
