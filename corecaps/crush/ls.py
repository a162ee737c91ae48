# ls: list directory entries.  ls [-a] [-l] [-1] [PATH ...]
# A CoreCap as a CRUSH program (corecaps/crushcap.py runs it for the console shell): ARGV and CWD are
# given by the runner, errors go to exo.log (the shell's stderr), `status` is the exit status.
# printable, absolute, strerror: corecaps/crush/_common.py.
import exo

MODE_BITS = ((0o400, "r"), (0o200, "w"), (0o100, "x"), (0o040, "r"), (0o020, "w"), (0o010, "x"),
             (0o004, "r"), (0o002, "w"), (0o001, "x"))
status = 0


def filemode(st):
    mode = st["mode"]
    chars = [st["type"]]
    for bit, ch in MODE_BITS:
        chars.append(ch if mode & bit else "-")
    for special, index, lower, upper in ((0o4000, 3, "s", "S"), (0o2000, 6, "s", "S"), (0o1000, 9, "t", "T")):
        if mode & special:
            chars[index] = lower if chars[index] == "x" else upper
    return "".join(chars)


def civil(seconds):
    days, rest = divmod(int(seconds), 86400)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return f"{year:04d}-{month:02d}-{day:02d} {rest // 3600:02d}:{rest % 3600 // 60:02d}"


def long_line(full, name):
    st = exo.fs.stat(full)
    target = " -> " + st["target"] if st["kind"] == "symlink" else ""
    return (f"{filemode(st)} {st['nlink']:>3} {st['uid']:>5} {st['gid']:>5} {st['size']:>9} {civil(st['mtime'])} "
            f"{printable(name + target)}")


def is_dir(full):
    return exo.fs.stat(full)["kind"] == "dir"


show_all = False
long_format = False
paths = []
unknown = []
for arg in ARGV:
    if arg.startswith("-") and len(arg) > 1 and all([c in "al1" for c in arg[1:]]):
        show_all = show_all or "a" in arg
        long_format = long_format or "l" in arg
    elif arg.startswith("-") and len(arg) > 1:
        unknown.append(arg)
    else:
        paths.append(arg)
if unknown:
    exo.log("usage: ls [-h] [-a] [-l] [-1] [paths ...]")
    exo.log("ls: error: unrecognized arguments: " + " ".join(unknown))
    status = 2
else:
    if not paths:
        paths = ["."]
    for i, path in enumerate(paths):
        full = absolute(path)
        try:
            if is_dir(full):
                names = sorted([n for n in exo.fs.list(full) if show_all or not n.startswith(".")])
                if len(paths) > 1:
                    print(("\n" if i else "") + f"{path}:")
                entries = [(full.rstrip("/") + "/" + n, n) for n in names]
            else:
                entries = [(full, path)]
            for entry, name in entries:
                if long_format:
                    print(long_line(entry, name))
                else:
                    print(printable(name) + ("/" if is_dir(entry) else ""))
        except OSError as e:
            exo.log(f"ls: {path}: {strerror(e)}")
            status = 1
