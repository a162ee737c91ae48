"""The `kmod` capsule's program: load the drivers for the devices present (coldplug, what udev
does at boot, from the `modalias` files in sysfs) and the modules the configuration names.

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
    aliases = modaliases()
    # -b: honour blacklists; -q: an alias with no module in the image is not an error.
    subprocess.run([modprobe, "-a", "-b", "-q", *aliases], check=False)
    print(f"coldplug: {len(aliases)} device aliases tried", flush=True)
    if named:
        r = subprocess.run([modprobe, "-a", *named], check=False)
        if r.returncode != 0:
            print(f"coldplug: could not load all of: {' '.join(named)}", file=sys.stderr, flush=True)
            return 1
        print(f"coldplug: loaded {' '.join(named)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
