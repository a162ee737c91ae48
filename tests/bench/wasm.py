"""Benchmark: WebAssembly capsules. Fuel and epoch-interruption overhead on realistic modules and a
tight loop (on this host, natively, and in the guest under the VM's accelerator), and start ->
ready of a wasm capsule, cold (compiled) and cached, against an ordinary Python capsule in the
same guest. tests/guest/bench_wasm.py does the measuring (its docstring says how).

Usage: python3 -m tests.bench.wasm [REPS] [RUNS]   (needs root: it builds the image)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from qemu.build import KERNEL_CMDLINE, build
from qemu.vm import VMConfig, accel
from tests.guest.bench_wasm import overhead
from tests.machine import Machine
from tests.vm.conftest import BOOT_TIMEOUT, TEST_LAYER

GUEST_BENCH = "python3 /usr/lib/exosphere/test/bench_wasm.py"


def overhead_table(where: str, result: dict[str, Any]) -> None:
    print(f"\n{where}: the `run` call, best of the repetitions (median in brackets), ms; overhead against no fuel")
    print(f"{'module':<8} {'no fuel':>16} {'fuel':>22} {'epoch':>22} {'fuel+epoch':>22}")
    for name, r in result.items():
        cells = [f"{r['best_ms']['none']:7.1f} ({r['median_ms']['none']:6.1f})"]
        for config in ("fuel", "epoch", "fuel+epoch"):
            best, median, more = r["best_ms"][config], r["median_ms"][config], r["overhead_pct"][config]
            cells.append(f"{best:7.1f} ({median:6.1f}) {more:+4.0f}%")
        print(f"{name:<8} {cells[0]:>16} {cells[1]:>22} {cells[2]:>22} {cells[3]:>22}")


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    overhead_table("host (native)", overhead(reps))
    image = build([TEST_LAYER], iso=False)
    with tempfile.TemporaryDirectory() as tmp:
        m = Machine("bench-wasm", VMConfig(kernel=image.kernel, initrd=image.initrd, cmdline=KERNEL_CMDLINE),
                    Path(tmp), global_timeout=3600, echo=False)
        with m.running():
            m.wait_for_console_text(r"boot complete: .*\n", BOOT_TIMEOUT)
            guest = json.loads(m.succeed(f"{GUEST_BENCH} overhead {max(3, reps // 3)}", timeout=1500).splitlines()[-1])
            start = json.loads(m.succeed(f"{GUEST_BENCH} start {runs}", timeout=1500).splitlines()[-1])
    overhead_table(f"guest ({accel(image.kernel)})", guest)
    print(f"\nstart -> ready in the guest ({accel(image.kernel)}), {start['runs']} starts each, ms:")
    for label, key in (("wasm capsule, cold (compiled)", "wasm_cold_ms"), ("wasm capsule, cached", "wasm_cached_ms"),
                       ("Python capsule (sd_notify at once)", "python_ms"),
                       ("  of which: compiling the module", "compile_ms"),
                       ("  of which: loading it from the cache", "cache_load_ms")):
        r = start[key]
        print(f"  {label:<36} p50 {r['p50']:7.1f}  p90 {r['p90']:7.1f}  mean {r['mean']:7.1f}")


if __name__ == "__main__":
    main()
