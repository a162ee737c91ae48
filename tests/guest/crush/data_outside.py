# /data granted read-only: reading outside it is refused (a trap, which the program cannot catch).
import exo

print("read", exo.fs.read("/data/in.txt").strip())
print("outside", exo.fs.read("/etc/hostname"))
