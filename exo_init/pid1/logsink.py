"""Per-capsule log files: each line of a capsule's stdout/stderr, timestamped, size-rotated."""

from __future__ import annotations

import contextlib
from collections import deque
from pathlib import Path

from exo_init.pid1.log import timestamp

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
