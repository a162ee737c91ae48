"""The power-button capsule: ACPI power button (evdev KEY_POWER) -> `poweroff` on exo_init.

QEMU's `system_powerdown` and VirtualBox's "ACPI Shutdown" press this button; without a
listener the kernel would ignore it.
"""

from __future__ import annotations

import os
import selectors
import struct
import sys
from pathlib import Path

from exo_init.client.control import call
from exo_init.lib.errors import ApiError
from exo_init.lib.notify import sd_notify
from exo_init.lib.paths import DEFAULT_RUNTIME

EV_KEY = 1
KEY_POWER = 116
EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit: timeval, type, code, value


def find_power_buttons(sysfs: Path = Path("/sys/class/input")) -> list[Path]:
    found = []
    for event in sorted(sysfs.glob("event*")):
        try:
            name = (event / "device/name").read_text().strip()
        except OSError:
            continue
        if name == "Power Button":
            found.append(Path("/dev/input") / event.name)
    return found


def main() -> None:
    buttons = find_power_buttons()
    if not buttons:
        print("no ACPI power button found; nothing to watch")
        sd_notify("READY=1\nSTATUS=no power button")
        return
    fds = [os.open(b, os.O_RDONLY) for b in buttons]
    print(f"watching {', '.join(map(str, buttons))}", flush=True)
    sd_notify(f"READY=1\nSTATUS=watching {', '.join(map(str, buttons))}")
    sel = selectors.DefaultSelector()
    for fd in fds:
        sel.register(fd, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            data = os.read(key.fd, EVENT.size * 64)
            for i in range(0, len(data) - EVENT.size + 1, EVENT.size):
                _s, _us, etype, code, value = EVENT.unpack_from(data, i)
                if etype == EV_KEY and code == KEY_POWER and value == 1:
                    print("power button pressed: powering off", flush=True)
                    try:
                        call(DEFAULT_RUNTIME / "control.sock", {"op": "poweroff"})
                    except (ApiError, OSError) as e:
                        print(f"poweroff request failed: {e}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
