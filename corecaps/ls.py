"""ls: list directory entries.  ls [-a] [-l] [-1] [PATH ...]"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time

from corecaps.tool import FAILED, OK, Refused, report, run
from exo_init.lib.text import printable


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ls", add_help=True, exit_on_error=False)
    p.add_argument("-a", action="store_true", help="include entries starting with .")
    p.add_argument("-l", action="store_true", help="long listing: mode, links, owner, size, time")
    p.add_argument("-1", dest="one", action="store_true", help="one entry per line")
    p.add_argument("paths", nargs="*", default=["."])
    return p


def _long(path: str, name: str) -> str:
    st = os.lstat(path)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(st.st_mtime))
    target = f" -> {os.readlink(path)}" if stat.S_ISLNK(st.st_mode) else ""
    return (f"{stat.filemode(st.st_mode)} {st.st_nlink:>3} {st.st_uid:>5} {st.st_gid:>5} "
            f"{st.st_size:>9} {when} {printable(name + target)}")


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except argparse.ArgumentError as e:
        raise Refused(str(e)) from None
    rc = OK
    for i, path in enumerate(args.paths):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                names = sorted(n for n in os.listdir(path) if args.a or not n.startswith("."))
                if len(args.paths) > 1:
                    print(("\n" if i else "") + f"{path}:")
                entries = [(os.path.join(path, n), n) for n in names]
            else:
                os.lstat(path)
                entries = [(path, path)]
            for full, name in entries:
                if args.l:
                    print(_long(full, name))
                else:
                    print(printable(name) + ("/" if os.path.isdir(full) and not os.path.islink(full) else ""))
        except OSError as e:
            report("ls", path, e)
            rc = FAILED
    sys.stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(run("ls", main))
