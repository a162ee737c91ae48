"""Well-known places, shared by PID 1 and its clients."""

from __future__ import annotations

from pathlib import Path

DEFAULT_RUNTIME = Path("/run/exosphere")  # control.sock, notify.sock, volatile logs
