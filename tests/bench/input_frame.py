"""Benchmark: input to frame on the booted desktop, the dashboard against a client that answers at once.

Nexquelium times every key press it delivers to the active view, from reading the press to
presenting the first frame that view committed after it, and keeps the figures per view (its
STATUS: "input to frame (median/max): dashboard 45/80 ms x12, viewer 9/14 ms x12"). Two views get
the same presses through the same path (QMP `send-key` -> a virtio keyboard -> evdev -> Nexquelium
-> `wl_keyboard`):

    viewer      the `viewer` test capsule (tests/guest/viewer.py): answers a press by committing a
                new buffer of one colour at once. The floor of the path: the baseline.
    dashboard   answers an arrow key by moving its selection, which takes a new snapshot from PID 1
                (info, the rows' status, events, the selected capsule's log lines) and redraws the
                whole window with cairo.

Rounds alternate between the two views (Alt+Tab, the compositor's chord), so a burst of load on
the host falls on both alike; a press goes every PACE s of the guest's clock, slower than either
answers, so each press is timed alone. The dashboard also redraws once a second on its own: a
periodic frame that lands between a press and its answer is taken as the answer (the figure can
only be lower for it). Printed: each view's median and max in ms, the presses answered of those
sent, and the dashboard's median as a ratio to the viewer's.

Usage: python3 -m tests.bench.input_frame [ROUNDS] [KEYS]   (needs root: it builds the image;
default 3 rounds of 8 presses for each view)
"""

from __future__ import annotations

import datetime
import re
import sys
import tempfile
from pathlib import Path

from qemu.build import KERNEL_CMDLINE, build
from qemu.vm import VMConfig, accel
from tests.machine import Machine
from tests.vm.conftest import BOOT_TIMEOUT, TEST_LAYER

PACE = 1.0  # seconds (guest clock) between presses
INPUT_DEVICES = ("-device", "virtio-tablet-pci", "-device", "virtio-keyboard-pci")
FIGURE = re.compile(r"(.+) (\d+)/(\d+) ms x(\d+)")


def parse_figures(status: str) -> dict[str, tuple[int, int, int]]:
    """Nexquelium's STATUS -> {view: (median ms, max ms, presses answered)} (compositor.latency_summary)."""
    _, found, rest = status.partition("input to frame (median/max): ")
    if not found:
        return {}
    return {m.group(1): (int(m.group(2)), int(m.group(3)), int(m.group(4)))
            for m in (FIGURE.fullmatch(part.strip()) for part in rest.split(",")) if m is not None}


def figures(m: Machine) -> dict[str, tuple[int, int, int]]:
    return parse_figures(str(m.capsule_status("nexquelium")["status_text"]))


def press(m: Machine, *qcodes: str) -> None:
    m.qmp.execute("send-key", keys=[{"type": "qcode", "data": k} for k in qcodes])


def settled(m: Machine, sent: int) -> dict[str, tuple[int, int, int]]:
    """The figures once both views have some and two looks a second apart agree (the compositor
    puts them in STATUS at most once a second, at a present; the dashboard presents every second)."""
    last: list[dict[str, tuple[int, int, int]]] = [{}]

    def check() -> tuple[bool, str]:
        now = figures(m)
        done = now == last[0] and all(view in now for view in ("viewer", "dashboard"))
        last[0] = now
        return done, f"{now} ({sent} presses sent to each view)"

    m.wait_until("the compositor's figures for both views, settled", check, 120, interval=1.5)
    return last[0]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    per_view = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    image = build([TEST_LAYER], iso=False)
    with tempfile.TemporaryDirectory() as tmp:
        m = Machine("bench-input", VMConfig(kernel=image.kernel, initrd=image.initrd, cmdline=KERNEL_CMDLINE,
                                            extra=INPUT_DEVICES), Path(tmp), global_timeout=3600, echo=False)
        with m.running():
            m.wait_for_console_text(r"boot complete: .*\n", BOOT_TIMEOUT)
            m.wait_for_capsule("dashboard", "ready", 180)
            m.succeed("exoctl start viewer")
            m.wait_until_succeeds("exoctl logs viewer -n 50 | grep -q 'viewer: enter'", 120)  # in front
            view = "viewer"
            for _ in range(rounds):
                for _ in range(2):
                    for k in range(per_view):  # the dashboard: down, up, ... (its selection stays near the top)
                        press(m, "a" if view == "viewer" else ("down" if k % 2 == 0 else "up"))
                        m.execute(f"sleep {PACE}")
                    press(m, "alt", "tab")
                    view = "dashboard" if view == "viewer" else "viewer"
                    m.execute(f"sleep {PACE}")  # (the views' own frames for the switch land before the next press)
            result = settled(m, rounds * per_view)
            load = m.succeed("cat /proc/loadavg").split()[0]
    base = result["viewer"][0]
    print(f"\ninput to frame (the compositor's figure: key press read -> the answering frame presented), "
          f"{rounds} rounds x {per_view} presses per view, alternating, {accel(image.kernel).upper()}, "
          f"{datetime.date.today()}, guest load {load}:")
    print(f"  {'view':<10} {'median ms':>9} {'max ms':>7} {'answered':>9}  median / viewer's")
    for name in ("viewer", "dashboard"):
        median, worst, n = result[name]
        print(f"  {name:<10} {median:9d} {worst:7d} {n:5d}/{rounds * per_view:<3d}  "
              f"{median / base if base else float('inf'):5.2f}x")


if __name__ == "__main__":
    main()
