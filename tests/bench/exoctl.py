"""Benchmark: how long one `exoctl status` takes in the booted image over each transport (the
private socket, D-Bus, auto), against a bare `python3 -I -S -c pass` (the interpreter's own
start-up, exoctl's floor) timed in the same guest, in the same run.

Usage: python3 -m tests.bench.exoctl [RUNS]   (needs root: it builds the image; run it under the
VM lock: flock /tmp/exo-vm.lock python3 -m tests.bench.exoctl)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from qemu.build import KERNEL_CMDLINE, build
from qemu.vm import VMConfig, accel
from tests.machine import Machine
from tests.vm.conftest import BOOT_TIMEOUT, TEST_LAYER

GUEST = r"""
import json, statistics, subprocess, sys, time
runs = int(sys.argv[1])
commands = {"python3 -I -S -c pass": ["python3", "-I", "-S", "-c", "pass"],
            **{f"exoctl --via {via} status": ["exoctl", "--via", via, "status"] for via in ("socket", "dbus", "auto")}}
times = {name: [] for name in commands}
for _ in range(runs):
    for name, argv in commands.items():  # (interleaved: a slow moment costs each the same)
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times[name].append((time.perf_counter() - t) * 1000)
print(json.dumps({name: {"p50": statistics.median(v), "min": min(v), "max": max(v)} for name, v in times.items()}))
"""


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    image = build([TEST_LAYER], iso=False)
    with tempfile.TemporaryDirectory() as tmp:
        m = Machine("bench-exoctl", VMConfig(kernel=image.kernel, initrd=image.initrd, cmdline=KERNEL_CMDLINE),
                    Path(tmp), global_timeout=3600, echo=False)
        with m.running():
            m.wait_for_console_text(r"boot complete: .*\n", BOOT_TIMEOUT)
            m.wait_for_capsule("dbus-bridge", "ready", 120)
            m.succeed(f"cat > /tmp/bench_exoctl.py <<'EOF'\n{GUEST}\nEOF")
            figures = json.loads(m.succeed(f"python3 /tmp/bench_exoctl.py {runs}", timeout=1800).splitlines()[-1])
    base = figures["python3 -I -S -c pass"]["p50"]
    print(f"\none command -> exit, in the guest ({accel(image.kernel)}), {runs} runs each, interleaved, ms:")
    for name, f in figures.items():
        print(f"  {name:<26} p50 {f['p50']:7.1f}  min {f['min']:7.1f}  max {f['max']:7.1f}  "
              f"{f['p50'] / base:5.1f}x the bare interpreter")


if __name__ == "__main__":
    main()
