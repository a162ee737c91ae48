"""Benchmark: typed commands at the console shell of the booted image, Enter -> first output, as a
person at the serial console sees it (the host types the command and the Enter, and times until
the first line after the echoed command arrives), under the host's accelerator (TCG here).

The baseline in the same run is `echo typed`, a builtin the shell runs in a forked child: the
serial line's and the shell's own round trip, which no command can beat. Each command's p50 is
printed in ms and as a ratio to it.

Usage: python3 -m tests.bench.typed [RUNS]   (needs root: it builds the image; default 5 runs)
"""

from __future__ import annotations

import datetime
import statistics
import sys
import tempfile
from pathlib import Path

from qemu.build import KERNEL_CMDLINE, build
from qemu.vm import VMConfig, accel
from tests.bench.corecaps import console_ms
from tests.machine import Machine
from tests.vm.conftest import BOOT_TIMEOUT, TEST_LAYER

BASELINE = "echo typed"
COMMANDS = ("exoctl status", "ls", "ps", "top -n 1")


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    image = build([TEST_LAYER], iso=False)
    with tempfile.TemporaryDirectory() as tmp:
        m = Machine("bench-typed", VMConfig(kernel=image.kernel, initrd=image.initrd, cmdline=KERNEL_CMDLINE),
                    Path(tmp), global_timeout=3600, echo=False)
        with m.running():
            m.wait_for_console_text(r"boot complete: .*\n", BOOT_TIMEOUT)
            m.wait_for_capsule("console", "ready", 120)
            console_ms(m, BASELINE, 1)  # (the first prompt, once)
            # interleaved, so a burst of load on the host falls on every command alike
            times: dict[str, list[float]] = {c: [] for c in (BASELINE, *COMMANDS)}
            for _ in range(runs):
                for command in times:
                    times[command] += console_ms(m, command, 1)
            load = m.succeed("cat /proc/loadavg").split()[0]
    base = statistics.median(times[BASELINE])
    print(f"\ntyped at the console shell -> first output line, {runs} runs each, interleaved, "
          f"{accel(image.kernel).upper()}, {datetime.date.today()}, guest load {load}:")
    print(f"  {'command':<16} {'p50 ms':>8} {'max ms':>8}  p50 / {BASELINE!r}")
    for command, values in times.items():
        p50 = statistics.median(values)
        print(f"  {command:<16} {p50:8.0f} {max(values):8.0f}  {p50 / base:5.2f}x")


if __name__ == "__main__":
    main()
