"""The system bus capsule's launcher: make what `dbus-daemon --system` expects, then exec it.

    python3 -m exo_init.system.sysbus DBUS-DAEMON [ARGS...]

dbus-daemon does not create its socket directory (/run/dbus, on a fresh tmpfs at every boot) and
refuses to start without a machine id; on other systems tmpfiles and systemd provide both. After
that this process *becomes* dbus-daemon (exec), so the capsule's main process, its readiness fd and
its stop signal are dbus-daemon's own.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

RUN_DIR = Path("/run/dbus")
MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))


def valid_machine_id(text: str) -> bool:
    text = text.strip()
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def ensure_machine_id(files: Sequence[Path] = MACHINE_ID_FILES) -> str:
    """The machine id from the first file holding a valid one; else a new one, written to the first
    file (D-Bus reads either)."""
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if valid_machine_id(text):
            return text.strip()
    new = uuid.uuid4().hex
    target = files[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(new + "\n")
    tmp.chmod(0o444)
    os.replace(tmp, target)
    return new


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or not args[0].startswith("/"):
        sys.exit("usage: python3 -m exo_init.system.sysbus /path/to/dbus-daemon [ARGS...]")
    try:
        RUN_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        machine_id = ensure_machine_id()
    except OSError as e:
        sys.exit(f"sysbus: {e.filename}: {e.strerror}")
    print(f"machine id {machine_id}; exec {' '.join(args)}", flush=True)
    try:
        os.execv(args[0], args)
    except OSError as e:
        sys.exit(f"sysbus: exec {args[0]}: {e.strerror}")


if __name__ == "__main__":
    main()
