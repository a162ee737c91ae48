"""The append-only anomaly/action log: one JSON object per line (events.jsonl).

Written by exo_init (switches, rollbacks) and by the sentry capsule (anomalies, actions); read by
`exoctl events` and the dashboard (every second), through PID 1's `events` operation.

- **One write per record**, to a file opened with O_APPEND: concurrent writers never interleave
  within a line; every record is fsynced (records are rare and must survive a power cut).
- **Bounded:** when the file has grown past MAX_BYTES, the writer that notices renames it to
  `events.jsonl.1` (the one older file kept; the previous one goes) and the next record starts a
  new file. A writer still holding the old file appends to `.1`, where readers look too.
- **Read from the tail:** `tail(n)` reads backwards from the end in blocks, parsing only the last
  `n` lines (and `.1` only if the current file has fewer): its cost does not grow with the file.
- **A torn tail is repaired:** a record cut short (a power cut mid-write) leaves a last line
  without its newline; the next append starts with one, so the torn line stays alone (readers
  skip it) and cannot swallow the next record.
- **No silent loss of big records:** a record longer than MAX_LINE is written shortened (long
  strings cut, then only its identifying keys) and marked `"truncated": <original bytes>`.
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from typing import Any

MAX_LINE = 16 * 1024
MAX_BYTES = 1024 * 1024
BLOCK = 64 * 1024
KEEP_KEYS = ("time", "source", "kind", "capsule", "anomaly", "action", "generation")


def encode(record: dict[str, Any]) -> bytes:
    """`record` as one line of at most MAX_LINE bytes (newline included)."""
    line = json.dumps(record, sort_keys=True, default=str).encode()
    if len(line) < MAX_LINE:
        return line + b"\n"
    size = len(line)
    for limit in (1024, 128):  # shorten every long string first, then keep only what identifies it
        short = {k: (v[:limit] + "...") if isinstance(v, str) and len(v) > limit else v for k, v in record.items()}
        short = {k: v for k, v in short.items() if isinstance(v, str | int | float | bool) or v is None}
        line = json.dumps({**short, "truncated": size}, sort_keys=True).encode()
        if len(line) < MAX_LINE:
            return line + b"\n"
    kept = {k: str(record[k])[:128] for k in KEEP_KEYS if k in record}
    return json.dumps({**kept, "truncated": size}, sort_keys=True).encode() + b"\n"


def _rotate_if_full(path: Path, fd: int) -> None:
    """Past MAX_BYTES: rename the file to `.1`, if `path` still names the file `fd` is (another
    writer may have rotated it already)."""
    st = os.fstat(fd)
    if st.st_size < MAX_BYTES:
        return
    try:
        if os.stat(path).st_ino == st.st_ino:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


def append(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Append `record` (with "time" added when missing); returns what was written."""
    record = {"time": round(time.time(), 3), **record}
    line = encode(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        _rotate_if_full(path, fd)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn last line: end it first
            line = b"\n" + line
        written = os.write(fd, line)
        if written != len(line):  # a full disk took part of it: take that back (no torn line), and say so
            os.ftruncate(fd, size)
            raise OSError(errno.ENOSPC, f"{path}: {written} of {len(line)} bytes written (no space left)")
        os.fsync(fd)
    finally:
        os.close(fd)
    return record


def _last_lines(path: Path, count: int) -> list[bytes]:
    """The last `count` complete lines of `path` (fewer if it has fewer), read from the end; at
    most (count + 1) * MAX_LINE bytes are read (a longer line is not one of ours)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return []
    with fh:
        end = fh.seek(0, os.SEEK_END)
        data = b""
        pos = end
        budget = (count + 1) * MAX_LINE
        while pos > 0 and data.count(b"\n") <= count + 1 and end - pos < budget:
            step = min(BLOCK, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    lines = data.split(b"\n")[:-1]  # (after the last newline: nothing, or a torn line)
    if pos > 0:
        lines = lines[1:]  # (the first one is cut: the rest of it is before `pos`)
    return [line for line in lines if line.strip()][-count:] if count else []


def tail(path: Path, count: int) -> list[dict[str, Any]]:
    """The last `count` records, oldest first (a torn or foreign line is skipped)."""
    out: list[dict[str, Any]] = []
    for candidate in (path, path.with_name(path.name + ".1")):
        records = []
        for raw in _last_lines(candidate, count - len(out)):
            try:
                obj = json.loads(raw)
            except (ValueError, RecursionError):
                continue
            if isinstance(obj, dict):
                records.append(obj)
        out = records + out
        if len(out) >= count:
            break
    return out[-count:] if count > 0 else []
