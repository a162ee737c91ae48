"""Benchmark: typed command -> first output of the CoreCaps `ls`, `cat`, `ps` and `top -n 1` in the
booted image, as CRUSH programs (now) against the Python tools they replaced (their source from git,
REV for ls and cat, PS_REV for ps and top), both as the console shell runs them
(tests/guest/bench_corecaps.py measures, in the guest), and the whole path through the serial
console for the CRUSH ones (typed at the shell's prompt -> the first line).

Usage: python3 -m tests.bench.corecaps [RUNS] [REV] [PS_REV]   (needs root: it builds the image; REV:
the revision holding the Python corecaps/ls.py and cat.py, default c78020a; PS_REV: ps.py and
top.py, default ede63e4)
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qemu.build import KERNEL_CMDLINE, build
from qemu.vm import VMConfig, accel
from tests.exo import REPO
from tests.machine import Machine
from tests.vm.conftest import BOOT_TIMEOUT, TEST_LAYER

PROMPT = r"console:(/[^\n#]*)# "


def console_ms(m: Machine, command: str, runs: int) -> list[float]:
    """Typed at the console shell -> the first line of output after the echoed command, ms."""
    out = []
    for _ in range(runs):
        start = m.send_console("\r")
        m.wait_for_console_text(PROMPT, 60, start)
        t0 = time.perf_counter()
        start = m.send_console(command + "\r")
        m.wait_for_console_text(re.escape(command) + r"[^\n]*\n[^\n]+\n", 60, start)
        out.append((time.perf_counter() - t0) * 1000)
        m.wait_for_console_text(PROMPT, 60, start)
    return out


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    rev = sys.argv[2] if len(sys.argv) > 2 else "c78020a"
    ps_rev = sys.argv[3] if len(sys.argv) > 3 else "ede63e4"
    image = build([TEST_LAYER], iso=False)
    with tempfile.TemporaryDirectory() as tmp:
        m = Machine("bench-corecaps", VMConfig(kernel=image.kernel, initrd=image.initrd, cmdline=KERNEL_CMDLINE),
                    Path(tmp), global_timeout=3600, echo=False)
        with m.running():
            m.wait_for_console_text(r"boot complete: .*\n", BOOT_TIMEOUT)
            m.succeed("mkdir -p /tmp/old")
            for name, at in (("ls", rev), ("cat", rev), ("ps", ps_rev), ("top", ps_rev)):
                source = subprocess.run(["git", "show", f"{at}:corecaps/{name}.py"], cwd=REPO, capture_output=True,
                                        text=True, check=True).stdout
                m.succeed(f"cat > /tmp/old/{name}.py << 'EOF_OLD'\n{source}EOF_OLD")
            guest = json.loads(m.succeed(f"cd /usr/lib/exosphere && python3 /usr/lib/exosphere/test/bench_corecaps.py "
                                         f"{runs} /tmp/old", timeout=1800).splitlines()[-1])
            m.wait_for_capsule("console", "ready", 60)
            typed = {cmd: console_ms(m, cmd, max(3, runs // 3))
                     for cmd in ("ls /usr", "cat /etc/os-release", "ps", "top -n 1")}
    where = accel(image.kernel)
    print(f"\ntyped command -> first output, as the shell runs a CoreCap, in the guest ({where}), {runs} runs, ms:")
    for name, r in guest.items():
        c = r["crush"]
        print(f"  {name:<4} CRUSH  p50 {c['p50']:7.1f}  p90 {c['p90']:7.1f}  mean {c['mean']:7.1f}")
        print(f"  {name:<4} Python p50 {r['python']['p50']:7.1f}  p90 {r['python']['p90']:7.1f}  "
              f"mean {r['python']['mean']:7.1f}   CRUSH/Python (p50) {r['ratio_p50']:.2f}")
    print(f"\nthrough the serial console (typed -> first line on the host), CRUSH CoreCaps ({where}), ms:")
    for cmd, values in typed.items():
        print(f"  {cmd:<20} p50 {statistics.median(values):7.1f}  max {max(values):7.1f}")


if __name__ == "__main__":
    main()
