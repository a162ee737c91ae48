"""The `kmod` capsule's program: load the drivers for the devices present (coldplug, what udev
does at boot, from the `modalias` files in sysfs, again for the devices the loaded drivers
added) and the modules the configuration names.

Usage: python3 -m exo_init.system.coldplug [MODULE ...]
Devices without a module in the image are skipped quietly; a named MODULE that cannot be loaded
is an error (exit 1, naming it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MODPROBE = "/usr/sbin/modprobe"
PASSES = 3


def modaliases(sysfs: Path = Path("/sys/devices")) -> list[str]:
    found: set[str] = set()
    for dirpath, _dirs, files in os.walk(sysfs):
        if "modalias" in files:
            try:
                alias = (Path(dirpath) / "modalias").read_text().strip()
            except OSError:
                continue
            if alias:
                found.add(alias)
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    named = sys.argv[1:] if argv is None else argv
    modprobe = os.environ.get("MODPROBE", MODPROBE)
    # -b: honour blacklists; -q: an alias with no module in the image is not an error. A driver
    # loaded in one pass may add devices (virtio_pci -> the virtio devices, a USB host controller
    # -> its hub): the next pass tries their aliases, until a pass finds nothing new.
    tried: set[str] = set()
    for _pass in range(PASSES):
        aliases = [a for a in modaliases() if a not in tried]
        if not aliases:
            break
        tried.update(aliases)
        subprocess.run([modprobe, "-a", "-b", "-q", *aliases], check=False)
    print(f"coldplug: {len(tried)} device aliases tried", flush=True)
    if named:
        r = subprocess.run([modprobe, "-a", *named], check=False)
        if r.returncode != 0:
            print(f"coldplug: could not load all of: {' '.join(named)}", file=sys.stderr, flush=True)
            return 1
        print(f"coldplug: loaded {' '.join(named)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
