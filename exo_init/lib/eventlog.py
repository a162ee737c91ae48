"""The append-only anomaly/action log: one JSON object per line (events.jsonl).

Written by exo_init (switches, rollbacks) and by the sentry capsule (anomalies, actions). Each
record is one write(2) to a file opened with O_APPEND, so concurrent writers never interleave
within a line; every record is fsynced (records are rare and must survive a power cut).
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from pathlib import Path

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from typing import Any

MAX_LINE = 16 * 1024


def append(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Append `record` (with "time" added when missing); returns what was written."""
    record = {"time": round(time.time(), 3), **record}
    line = json.dumps(record, sort_keys=True).encode()[:MAX_LINE - 1] + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return record


def tail(path: Path, count: int) -> list[dict[str, Any]]:
    """The last `count` records (a torn or foreign line is skipped)."""
    out: deque[dict[str, Any]] = deque(maxlen=max(0, count))
    try:
        with path.open("rb") as f:
            for raw in f:
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
    except FileNotFoundError:
        return []
    return list(out)
