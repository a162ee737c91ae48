"""Benchmark: direct boot (the initramfs is the root, exo_init is its init) against a minimal
stage 1 (busybox initramfs that mounts an ext4 root disk and switch_roots to exo_init).

Boots the same image both ways, alternating, RUNS times each, in this process and run, and prints
per boot: QEMU start to the kernel's start, to exo_init's start and to "boot complete", as
seen from the host (this includes the firmware loading the kernel and initrd into guest memory,
which the guest's own clock cannot see), and the guest's own figures. The boots are the default,
quiet ones (the kernel's messages are not on the console): the kernel's time points are read from
its log (`dmesg`) once the boot is complete, and the kernel's start on the host's clock is "boot
complete" on the host's clock less the guest's "since kernel start".
Usage: python3 -m tests.bench.boot [RUNS]   (needs root: it builds the image)
"""

from __future__ import annotations

import math
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from qemu.build import DISK_ROOT_CMDLINE, KERNEL_CMDLINE, Image, build
from qemu.vm import VMConfig, accel
from tests.machine import Machine, boot_times
from tests.vm.conftest import BOOT_TIMEOUT, TEST_LAYER


@dataclass(frozen=True)
class Boot:
    kernel: float        # host: QEMU start -> the kernel's start (boot complete, less the guest's since-kernel)
    init: float          # host: QEMU start -> exo_init's first line
    complete: float      # host: QEMU start -> "boot complete"
    guest_user: float    # guest: kernel start -> the first userspace process (the printk time of "Run ... as init")
    guest_switch: float  # guest: kernel start -> stage 1 mounted the root, about to switch_root (stage 1 only)
    guest_init: float    # guest: kernel start -> exo_init's start
    guest_kernel: float  # guest: kernel start -> "boot complete" (/proc/uptime)


def vm_config(image: Image, variant: str) -> VMConfig:
    if variant == "direct":
        return VMConfig(kernel=image.kernel, initrd=image.initrd, cmdline=KERNEL_CMDLINE)
    return VMConfig(kernel=image.kernel, initrd=image.stage1, cmdline=DISK_ROOT_CMDLINE, root_disk=image.root_disk)


def boot_once(image: Image, variant: str, workdir: Path) -> Boot:
    m = Machine(variant, vm_config(image, variant), workdir, echo=False)
    started = time.monotonic()
    with m.running():
        m.wait_for_console_text(r"exo_init starting", BOOT_TIMEOUT)
        init = time.monotonic() - started
        m.wait_for_console_text(r"boot complete: .*\n", BOOT_TIMEOUT)
        complete = time.monotonic() - started
        times = boot_times(m.console)
        kernel_log = m.succeed("dmesg")
        user = printk_time(kernel_log, r"Run \S+ as init process")
        switch = printk_time(kernel_log, r"stage1: mounted")
    return Boot(complete - times["since_kernel"], init, complete, user, switch,
                times["since_kernel"] - times["since_init"], times["since_kernel"])


def printk_time(console: str, regex: str) -> float:
    found = re.search(r"\[ *(\d+\.\d+)\] " + regex, console)
    return float(found.group(1)) if found else math.nan


def figures(b: Boot) -> str:
    return (f"host: kernel {b.kernel:5.2f} s, exo_init {b.init:5.2f} s, boot complete {b.complete:5.2f} s | "
            f"guest: first userspace {b.guest_user:5.2f} s, "
            + ("" if math.isnan(b.guest_switch) else f"switch_root {b.guest_switch:5.2f} s, ")
            + f"exo_init {b.guest_init:5.2f} s, "
            f"boot complete {b.guest_kernel:5.2f} s")


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    image = build([TEST_LAYER], iso=False, disk_root=True)
    assert image.stage1 is not None and image.root_disk is not None
    results: dict[str, list[Boot]] = {"direct": [], "stage1": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            for variant, boots in results.items():
                b = boot_once(image, variant, Path(tmp) / f"{variant}-{i}")
                boots.append(b)
                print(f"run {i + 1} {variant:6}: {figures(b)}", flush=True)
    print(f"\naccelerator: {accel(image.kernel)}; {runs} boots each, alternating; medians "
          "(host: from QEMU start; guest: from kernel start):")
    med = {v: {f: statistics.median(getattr(b, f) for b in bs) for f in Boot.__dataclass_fields__}
           for v, bs in results.items()}
    for v, fields in med.items():
        print(f"  {v:6}: {figures(Boot(**fields))}")
    print(f"initrd: direct {image.sizes['initrd'] / 1e6:.1f} MB, stage 1 {image.sizes['stage1'] / 1e6:.1f} MB "
          f"(+ root.ext4 {image.sizes['root.ext4 (allocated)'] / 1e6:.1f} MB on disk)")
    ratio = med["stage1"]["complete"] / med["direct"]["complete"]
    print(f"stage 1 / direct, boot complete: {ratio:.2f}x")


if __name__ == "__main__":
    main()
