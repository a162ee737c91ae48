"""Per-capsule log files: each line of a capsule's stdout/stderr, timestamped, size-rotated.

PID 1 does this for every capsule, so its cost is per chunk, not per line: a chunk read from the
pipe gets the timestamp prefix on every line by one `bytes.replace` and is written with one
`write`, and the file size is counted, not `stat`ed. The bytes are the capsule's own (not decoded:
the readers, exo_init/lib/logfile.py, decode with replacement). How much a capsule may write per
second is the runner's business (runner.py: a token bucket, backpressure on the capsule's pipe),
counted in what `feed` returns: the bytes written, timestamps included.

Invariants: a partial line is held until its newline, or written as a line of its own once it
exceeds MAX_LINE; the file is rotated once it exceeds MAX_BYTES (KEEP old files); `last_line`
is the capsule's last complete line (at most LAST_LINE bytes), for the console's failure line.
"""

from __future__ import annotations

import os
from pathlib import Path

from exo_init.pid1.log import timestamp

MAX_BYTES = 1 << 20
KEEP = 3
MAX_LINE = 8192
LAST_LINE = 512


class LogSink:
    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / f"{name}.log"
        self.last_line = ""
        self._partial = b""
        self._fd: int | None = None
        self._size = 0

    def feed(self, data: bytes) -> int:
        """Bytes from the capsule's pipe; complete lines are written, a partial line is kept.
        Returns how many bytes were written (a timestamp per line: short lines cost many times
        their size)."""
        data = self._partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = b""
            if len(data) <= MAX_LINE:
                self._partial = data
                return 0
            return self._lines(data)
        complete, self._partial = data[:cut], data[cut + 1:]
        if len(self._partial) > MAX_LINE:
            complete, self._partial = data, b""
        return self._lines(complete)

    def flush_partial(self) -> None:
        if self._partial:
            partial, self._partial = self._partial, b""
            self._lines(partial)

    def line(self, text: str) -> None:
        """One line of exo_init's own about the capsule ("[exo_init] main process exited 0")."""
        self._lines(text.encode(errors="replace"))

    def _lines(self, lines: bytes) -> int:
        """Write `lines` (newline-separated, without the final newline), each timestamped; the
        bytes written."""
        prefix = timestamp().encode() + b" "
        self.last_line = lines[lines.rfind(b"\n") + 1:][:LAST_LINE].decode(errors="replace")
        data = prefix + lines.replace(b"\n", b"\n" + prefix) + b"\n"
        self._write(data)
        return len(data)

    def _write(self, data: bytes) -> None:
        try:
            if self._fd is None:
                self._open()
            elif self._size > MAX_BYTES:
                self._rotate()
                self._open()
            assert self._fd is not None
            view = memoryview(data)
            while view:  # a regular file: short writes only when the disk is full (then OSError)
                view = view[os.write(self._fd, view):]
            self._size += len(data)
        except OSError:
            pass  # a full or read-only disk must not stop supervision; `last_line` still holds it

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        self.close()
        for i in range(KEEP - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                src.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
