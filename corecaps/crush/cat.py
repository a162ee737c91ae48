# cat: copy files (or standard input, or "-") to standard output.  cat [FILE ...]
# A CoreCap as a CRUSH program (corecaps/crushcap.py runs it for the console shell): ARGV and CWD are
# given by the runner, errors go to exo.log (the shell's stderr), `status` is the exit status.
import exo

status = 0


def absolute(path):
    parts = [] if path.startswith("/") else [p for p in CWD.split("/") if p]
    for p in path.split("/"):
        if p == "..":
            if parts:
                parts.pop()
        elif p and p != ".":
            parts.append(p)
    return "/" + "/".join(parts)


def strerror(e):
    text = str(e)
    start = text.find("] ")
    end = text.rfind(": '")
    return text[start + 2:end] if start >= 0 and end > start else text


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
