# cat: copy files (or standard input, or "-") to standard output.  cat [FILE ...]
# A CoreCap as a CRUSH program (corecaps/crushcap.py runs it for the console shell): ARGV and CWD are
# given by the runner, errors go to exo.log (the shell's stderr), `status` is the exit status.
# absolute, strerror: corecaps/crush/_common.py.
import exo

status = 0

for path in ARGV or ["-"]:
    if path == "-":
        chunk = exo.stdin.read()
        while chunk:
            print(chunk, end="")
            chunk = exo.stdin.read()
        continue
    try:
        print(exo.fs.read(absolute(path)), end="")
    except OSError as e:
        exo.log(f"cat: {path}: {strerror(e)}")
        status = 1
    except ValueError as e:
        exo.log(f"cat: {path}: {e}")
        status = 1
