# /data granted read-only: a program that declares fs.write is refused before it runs.
import exo

print("started")
exo.fs.write("/data/out.txt", "written")
