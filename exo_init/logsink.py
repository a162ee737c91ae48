"""Per-capsule log files: each line of a capsule's stdout/stderr, timestamped, size-rotated."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from pathlib import Path
from typing import Any

from exo_init.log import timestamp

MAX_BYTES = 1 << 20
KEEP = 3
MAX_LINE = 8192


class LogSink:
    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / f"{name}.log"
        self._partial = b""
        self._fh: object | None = None
        self.recent: deque[str] = deque(maxlen=200)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open for the capsule's life

    def _rotate(self) -> None:
        self.close()
        for i in range(KEEP - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                src.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def feed(self, data: bytes) -> None:
        """Bytes from the capsule's pipe; complete lines are written, a partial line is kept."""
        self._partial += data
        *lines, self._partial = self._partial.split(b"\n")
        if len(self._partial) > MAX_LINE:
            lines.append(self._partial)
            self._partial = b""
        for raw in lines:
            self.line(raw.decode(errors="replace"))

    def flush_partial(self) -> None:
        if self._partial:
            self.line(self._partial.decode(errors="replace"))
            self._partial = b""

    def line(self, text: str) -> None:
        entry = f"{timestamp()} {text}"
        self.recent.append(entry)
        try:
            if self._fh is None:
                self._open()
            elif self.path.stat().st_size > MAX_BYTES:
                self._rotate()
                self._open()
            assert self._fh is not None
            self._fh.write((entry + "\n").encode())  # type: ignore[attr-defined]
        except OSError:
            pass  # a full or read-only disk must not stop supervision; `recent` still holds it

    def close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()  # type: ignore[attr-defined]
            self._fh = None


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
                chunk = fh.read().decode(errors="replace").splitlines()
        except OSError:
            continue
        lines = chunk + lines
        if len(lines) >= count:
            break
    return lines[-count:] if count > 0 else []
