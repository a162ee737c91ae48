"""cat: copy files (or standard input, or "-") to standard output.  cat [FILE ...]"""

from __future__ import annotations

import os
import sys

from corecaps.tool import FAILED, OK, report, run


def _copy(fd: int) -> None:
    out = sys.stdout.buffer
    while data := os.read(fd, 65536):
        out.write(data)
    out.flush()


def main(argv: list[str]) -> int:
    rc = OK
    for path in argv or ["-"]:
        if path == "-":
            _copy(sys.stdin.fileno())
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            report("cat", path, e)
            rc = FAILED
            continue
        try:
            _copy(fd)
        except IsADirectoryError as e:
            report("cat", path, e)
            rc = FAILED
        finally:
            os.close(fd)
    return rc


if __name__ == "__main__":
    sys.exit(run("cat", main))
