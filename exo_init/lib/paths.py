"""Well-known places, shared by PID 1 and its clients."""

from __future__ import annotations

from pathlib import Path

DEFAULT_RUNTIME = Path("/run/exosphere")  # control.sock, notify.sock, volatile logs
CONTROL_SOCKET = "control.sock"            # PID 1's control socket, in DEFAULT_RUNTIME (mode 0666)
ROOT_CONTROL_SOCKET = "control.root.sock"  # the same API for root only (mode 0600), beside it
