"""Benchmark: capsule spawn latency (p50/p99), scoped and unconfined, vs a bare fork/exec; PID 1's RSS.

Boots the test image and runs tests/guest/bench_spawn.py in the guest, where cgroup v2 is real.
Usage: python3 -m tests.bench.spawn [RUNS]   (needs root: it builds the image)
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


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    image = build([TEST_LAYER], iso=False)
    with tempfile.TemporaryDirectory() as tmp:
        m = Machine("bench", VMConfig(kernel=image.kernel, initrd=image.initrd, cmdline=KERNEL_CMDLINE),
                    Path(tmp), echo=False)
        with m.running():
            m.wait_for_console_text(r"boot complete: .*\n", BOOT_TIMEOUT)
            out = m.succeed(f"python3 /usr/lib/exosphere/test/bench_spawn.py {runs}", timeout=600)
    r = json.loads(out.strip().splitlines()[-1])
    c, h, b = r["capsule_ms"], r["host_capsule_ms"], r["bare_fork_exec_ms"]
    print(f"accelerator: {accel(image.kernel)}; {r['runs']} runs each, same guest, same run")
    print(f"scoped capsule start -> ready:            p50 {c['p50']:.2f} ms  p99 {c['p99']:.2f} ms")
    print(f"unconfined capsule (host) start -> ready: p50 {h['p50']:.2f} ms  p99 {h['p99']:.2f} ms")
    print(f"bare fork/exec (subprocess.Popen):        p50 {b['p50']:.2f} ms  p99 {b['p99']:.2f} ms")
    print(f"ratio (p50): scoped {r['ratio_p50']:.1f}x, unconfined {h['p50'] / b['p50']:.1f}x the bare fork/exec")
    print(f"PID 1 (exo_init) RSS: {r['pid1_rss_kib'] / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
