"""Benchmark: the arm64 test image under qemu-system-aarch64 (TCG) against the x86_64 one under
qemu-system-x86_64 (TCG forced: EXO_ACCEL=tcg), on the same host, in the same run.

Boots each RUNS times, alternating, and prints per boot the host's view (QEMU start to the
kernel's first line and to "boot complete") and the guest's ("boot complete" since kernel start),
then the medians and the arm64/x86_64 ratio. The two images are the same test layer on the same
package list, display capsules included (arm64's pywayland is cross-built: qemu/cross.py).
Usage: python3 -m tests.bench.arm64 [RUNS]   (needs root: it builds the images)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from qemu.arch import Arch
from qemu.build import VERBOSE_KERNEL, Image, build
from qemu.vm import VMConfig
from tests.machine import Machine, boot_times
from tests.vm.conftest import BOOT_TIMEOUT, TEST_LAYER


def boot_once(image: Image, workdir: Path) -> tuple[float, float, float]:
    """(host: kernel's first line, host: boot complete, guest: boot complete since kernel start)."""
    # (the kernel's "Linux version" line is a time point: not quiet)
    cfg = VMConfig(kernel=image.kernel, initrd=image.initrd, cmdline=f"{image.cmdline} {VERBOSE_KERNEL}",
                   arch=image.arch)
    m = Machine(f"bench-{image.arch}", cfg, workdir, echo=False)
    started = time.monotonic()
    with m.running():
        m.wait_for_console_text(r"Linux version", 120)
        kernel = time.monotonic() - started
        m.wait_for_console_text(r"boot complete: .*\n", BOOT_TIMEOUT * 2)
        complete = time.monotonic() - started
    return kernel, complete, boot_times(m.console)["since_kernel"]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    os.environ["EXO_ACCEL"] = "tcg"  # (x86_64 under KVM would not be the comparison asked for)
    images = {arch: build([TEST_LAYER], iso=False, arch=arch) for arch in (Arch.AMD64, Arch.ARM64)}
    results: dict[Arch, list[tuple[float, float, float]]] = {arch: [] for arch in images}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            for arch, image in images.items():
                b = boot_once(image, Path(tmp) / f"{arch}-{i}")
                results[arch].append(b)
                print(f"{arch:<6} run {i + 1}: host: kernel {b[0]:6.2f} s, boot complete {b[1]:6.2f} s | "
                      f"guest: boot complete {b[2]:6.2f} s since kernel start", flush=True)
    med = {arch: [statistics.median(b[k] for b in bs) for k in range(3)] for arch, bs in results.items()}
    for arch, m in med.items():
        print(f"median {arch:<6}: host boot complete {m[1]:6.2f} s, guest {m[2]:6.2f} s")
    print(f"arm64 / x86_64 (TCG, same host): host boot complete x{med[Arch.ARM64][1] / med[Arch.AMD64][1]:.2f}, "
          f"guest x{med[Arch.ARM64][2] / med[Arch.AMD64][2]:.2f}; load average at the end "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
