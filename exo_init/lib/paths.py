"""Well-known places, shared by PID 1 and its clients."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MANIFEST = Path("/etc/exosphere/manifest.json")  # the image's manifest (exo.manifest= overrides it)
DEFAULT_RUNTIME = Path("/run/exosphere")  # control.sock, notify.sock, volatile logs
SYSTEM_BUS_DIR = Path("/run/dbus")        # the system bus socket's directory (capabilities.bus)
WAYLAND_SOCKET = "wayland-0"              # in DEFAULT_RUNTIME / "wayland" (capabilities.display)
CONTROL_SOCKET = "control.sock"            # PID 1's control socket, in DEFAULT_RUNTIME (mode 0666)
ROOT_CONTROL_SOCKET = "control.root.sock"  # the same API for root only (mode 0600), beside it
