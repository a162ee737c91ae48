"""The power-button capsule: the power button (evdev KEY_POWER) -> `poweroff` on exo_init.

QEMU's `system_powerdown` and VirtualBox's "ACPI Shutdown" press this button; without a
listener the kernel would ignore it. On a PC it is the ACPI power button; on QEMU's arm64 virt
machine (device tree, no ACPI) a GPIO key (gpio-keys) that sends KEY_POWER.
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


def sends_key(capabilities: str, code: int) -> bool:
    """Whether an input device's key capability bitmap (sysfs `capabilities/key`: hex words, most
    significant first, 64 bits each on a 64-bit kernel) has key `code`."""
    words = capabilities.split()
    index = len(words) - 1 - code // 64
    return 0 <= index < len(words) and bool(int(words[index], 16) >> (code % 64) & 1)


def find_power_buttons(sysfs: Path = Path("/sys/class/input")) -> list[Path]:
    found = []
    for event in sorted(sysfs.glob("event*")):
        try:
            name = (event / "device/name").read_text().strip()
            keys = (event / "device/capabilities/key").read_text() if name == "gpio-keys" else ""
        except OSError:
            continue
        if name == "Power Button" or sends_key(keys, KEY_POWER):
            found.append(Path("/dev/input") / event.name)
    return found


def main() -> None:
    buttons = find_power_buttons()
    if not buttons:
        print("no power button found; nothing to watch")
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
