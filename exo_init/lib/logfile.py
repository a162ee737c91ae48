"""Reading capsule log files (written by PID 1's LogSink): the last lines, or new lines as they come."""

from __future__ import annotations

import os
from pathlib import Path

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from typing import Any


class LogTail:
    """The new lines of a capsule log as they are written (for `exoctl logs -f` and the D-Bus
    LogLine signal): reads from the end, follows rotation, and waits for a file not there yet."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = b""
        self.fh: Any = None
        self.inode = 0
        self._open(at_end=True)

    def _open(self, at_end: bool) -> None:
        try:
            self.fh = open(self.path, "rb")  # noqa: SIM115 - kept open while followed
        except OSError:
            self.fh = None
            return
        self.inode = os.fstat(self.fh.fileno()).st_ino
        if at_end:
            self.fh.seek(0, os.SEEK_END)

    def read_lines(self) -> list[str]:
        if self.fh is None:
            self._open(at_end=False)  # the capsule has logged nothing yet: its file comes later
            if self.fh is None:
                return []
        data = self.fh.read()
        try:
            st = os.stat(self.path)
            rotated = st.st_ino != self.inode or st.st_size < self.fh.tell()
        except OSError:
            rotated = False
        if rotated:
            self.fh.close()
            self._open(at_end=False)
            if self.fh is not None:
                data += self.fh.read()
        self.partial += data
        *lines, self.partial = self.partial.split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def tail(path: Path, count: int) -> list[str]:
    """The last `count` lines of a capsule log (reading the rotated file too if needed)."""
    lines: list[str] = []
    for candidate in (path, path.with_name(f"{path.name}.1")):
        try:
            with open(candidate, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 256 * 1024))
                # Lines end at "\n" only: a capsule's "\r" (or any other character str.splitlines
                # takes as a line end) must not make a line of its own that looks like an entry.
                chunk = fh.read().decode(errors="replace").split("\n")
                if chunk and chunk[-1] == "":
                    chunk.pop()
        except OSError:
            continue
        lines = chunk + lines
        if len(lines) >= count:
            break
    return lines[-count:] if count > 0 else []
