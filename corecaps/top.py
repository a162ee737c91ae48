"""top: every capsule's state and resource figures, live, from exo_init's control API.

top [-n ITERATIONS] [-d SECONDS] [--socket PATH]; q quits. Needs the capsule's `control` grant.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import termios
import time
import tty
from pathlib import Path
from typing import Any

from corecaps.tool import FAILED, OK, Refused, run
from exo_init.client.control import call
from exo_init.client.exoctl import status_table
from exo_init.lib.paths import DEFAULT_RUNTIME


def frame(rows: list[dict[str, Any]]) -> str:
    rows = sorted(rows, key=lambda r: (-float(r.get("cpu_percent") or 0), r["name"]))
    ready = sum(1 for r in rows if r["state"] == "ready")
    failed = [r["name"] for r in rows if r["state"] == "failed"]
    head = (f"top - {time.strftime('%H:%M:%S')}  capsules: {len(rows)}, {ready} ready"
            + (f", failed: {', '.join(failed)}" if failed else ""))
    return head + "\n" + status_table(rows)


def _wait_for_quit(delay: float) -> bool:
    """Wait `delay` seconds for a 'q' on a terminal stdin; False (keep going) when there is none."""
    if not os.isatty(0):
        time.sleep(delay)
        return False
    ready, _, _ = select.select([0], [], [], delay)
    return bool(ready) and os.read(0, 16).lower().startswith(b"q")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="top", exit_on_error=False)
    p.add_argument("-n", type=int, default=0, help="stop after this many screens (0: until q)")
    p.add_argument("-d", type=float, default=1.0, help="seconds between screens")
    p.add_argument("--socket", type=Path, default=DEFAULT_RUNTIME / "control.sock")
    try:
        args = p.parse_args(argv)
    except argparse.ArgumentError as e:
        raise Refused(str(e)) from None
    saved = termios.tcgetattr(0) if os.isatty(0) else None
    try:
        if saved is not None:
            tty.setcbreak(0)
        shown = 0
        while True:
            try:
                rows = call(args.socket, {"op": "status"})
            except OSError as e:
                sys.stderr.write(f"top: cannot reach exo_init at {args.socket}: {e.strerror or e}\n")
                return FAILED
            clear = "\033[H\033[2J" if os.isatty(1) else ("\n" if shown else "")
            sys.stdout.write(clear + frame(rows) + "\n")
            sys.stdout.flush()
            shown += 1
            if args.n and shown >= args.n:
                return OK
            if _wait_for_quit(args.d):
                return OK
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)


if __name__ == "__main__":
    sys.exit(run("top", main))
