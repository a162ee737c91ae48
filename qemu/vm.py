"""QEMU command lines for the dev image, and the KVM probe.

KVM is used only if a probe VM actually runs under it: on nested hosts /dev/kvm can exist while
starting a guest aborts (an MSR assertion), so its presence proves nothing. EXO_ACCEL=tcg|kvm
overrides the probe. A foreign architecture's guest (arm64 on an x86_64 host: qemu-system-aarch64
-M virt) always runs under TCG, whatever EXO_ACCEL says.
"""

from __future__ import annotations

import functools
import os
import selectors
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from qemu.arch import Arch, is_foreign, platform
from qemu.util import StepFailed

QEMU = platform(Arch.AMD64).qemu
AGENT_PORT = "org.exosphere.agent"
OVMF_CODE = platform(Arch.AMD64).efi_firmware
# TCG's default pointer authentication (QARMA) costs much of the guest's speed; QEMU's own
# cheaper algorithm gives the guest the same feature.
ARM64_TCG_CPU = "max,pauth-impdef=on"


ACCELERATORS = ("tcg", "kvm")
PROBE_TIMEOUT = 8.0  # seconds for the probe kernel's banner under KVM


def forced_accel() -> str | None:
    """EXO_ACCEL=tcg|kvm: that accelerator, without the probe; unset or empty: None (probe)."""
    value = os.environ.get("EXO_ACCEL", "")
    if value and value not in ACCELERATORS:
        raise StepFailed(f"EXO_ACCEL={value!r}: expected tcg or kvm (or unset, to probe for KVM)")
    return value or None


def prints_banner(argv: list[str], timeout: float) -> bool:
    """Whether the program `argv` prints a Linux kernel's banner ("Linux version") within
    `timeout` seconds; it is killed either way. A program that cannot start, or ends, says no."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        return False
    assert proc.stdout is not None
    try:
        seen = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while b"Linux version" not in seen:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    break  # (no banner in time)
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break  # (it ended)
                seen += chunk
        return b"Linux version" in seen
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


@functools.cache
def kvm_works(kernel: Path | None = None) -> bool:
    """Boot `kernel` under KVM with the CPU model we would use and wait for it to print its banner.

    Seen on nested hosts: `-cpu host` aborts on an MSR assertion, and other CPU models start but
    the guest never prints anything. Only a kernel that actually talks proves KVM works.
    """
    if kernel is None or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    return prints_banner([QEMU, "-accel", "kvm", "-machine", "q35", "-cpu", "host", "-m", "128",
                          "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
                          "-kernel", str(kernel), "-append", "console=ttyS0 panic=-1 rdinit=/none"], PROBE_TIMEOUT)


def accel(kernel: Path | None = None, arch: Arch = Arch.AMD64) -> str:
    """The accelerator a VM runs under: TCG for a foreign architecture, else EXO_ACCEL's, else KVM
    when the probe proves it works (kvm_works), else TCG."""
    if is_foreign(arch):
        return "tcg"
    forced = forced_accel()
    if forced is not None:
        return forced
    return "kvm" if kvm_works(kernel) else "tcg"


@dataclass(frozen=True)
class VMConfig:
    kernel: Path | None = None          # direct boot (with initrd + cmdline)
    initrd: Path | None = None
    cmdline: str = ""
    cdrom: Path | None = None           # boot the ISO as a CD ...
    disk: Path | None = None            # ... or an image as the boot disk
    root_disk: Path | None = None       # the stage-1 variant's root filesystem (virtio-blk, writes discarded)
    state_disk: Path | None = None      # a persistent data disk (virtio-blk, /dev/vdb or vda)
    uefi: bool = False
    memory_mb: int = 1024
    cpus: int = 2
    graphical: bool = False             # a window (else no display device output shown)
    vga: str = "std"
    serial: str = "stdio"               # -serial argument
    qmp_socket: Path | None = None
    agent_socket: Path | None = None
    hostfwd: tuple[tuple[int, int], ...] = ()   # (host port, guest port)
    no_reboot: bool = True
    extra: tuple[str, ...] = field(default_factory=tuple)
    probe_kernel: Path | None = None    # for ISO/disk boots: a kernel to probe KVM with
    arch: Arch = Arch.AMD64             # arm64: -M virt, PL011 serial, virtio-gpu, UEFI for ISO boots


def state_device(cfg: VMConfig) -> str:
    """The guest's name for the state disk: the virtio disks are numbered in qemu_argv's order."""
    return "/dev/vdb" if cfg.root_disk is not None else "/dev/vda"


def qemu_argv(cfg: VMConfig) -> list[str]:
    plat = platform(cfg.arch)
    arm = cfg.arch is Arch.ARM64
    a = accel(cfg.kernel or cfg.probe_kernel, cfg.arch)
    cpu = "host" if a == "kvm" else ARM64_TCG_CPU if arm else "max"
    argv = [plat.qemu, "-machine", plat.qemu_machine, "-accel", a, "-m", str(cfg.memory_mb), "-smp", str(cfg.cpus),
            "-cpu", cpu, "-nodefaults", "-no-user-config"]
    if arm and (cfg.uefi or cfg.kernel is None):  # (the virt machine has no BIOS: ISO boots are UEFI)
        argv += ["-bios", str(plat.efi_firmware)]
    elif cfg.uefi:
        argv += ["-drive", f"if=pflash,format=raw,readonly=on,file={plat.efi_firmware}"]
    if cfg.kernel is not None:
        argv += ["-kernel", str(cfg.kernel)]
        if cfg.initrd is not None:
            argv += ["-initrd", str(cfg.initrd)]
        argv += ["-append", cfg.cmdline]
    if cfg.cdrom is not None:  # (virt has no IDE: a SCSI CD on virtio-scsi there)
        argv += ["-drive", f"file={cfg.cdrom},media=cdrom,readonly=on,if=none,id=cd0"]
        argv += (["-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-cd,bus=scsi0.0,drive=cd0,bootindex=0"]
                 if arm else ["-device", "ide-cd,drive=cd0,bootindex=0"])
    if cfg.disk is not None:
        argv += ["-drive", f"file={cfg.disk},format=raw,if=none,id=boot0",
                 "-device", f"{'virtio-blk-pci' if arm else 'ide-hd'},drive=boot0,bootindex=0"]
    if cfg.root_disk is not None:
        argv += ["-drive", f"file={cfg.root_disk},format=raw,if=virtio,snapshot=on"]
    if cfg.state_disk is not None:
        argv += ["-drive", f"file={cfg.state_disk},format=raw,if=virtio,cache=unsafe"]
    argv += ["-serial", cfg.serial]
    if arm:  # the display is virtio-gpu (fbdev through its DRM driver); keyboard and tablet on virtio
        argv += ["-device", "virtio-gpu-pci"]
        argv += ["-device", "virtio-keyboard-pci", "-device", "virtio-tablet-pci"] if cfg.graphical else []
    else:
        argv += ["-vga", cfg.vga]
    if not cfg.graphical:
        argv += ["-display", "none"]
    argv += ["-device", "virtio-rng-pci"]
    fwd = "".join(f",hostfwd=tcp:127.0.0.1:{h}-:{g}" for h, g in cfg.hostfwd)
    argv += ["-netdev", f"user,id=net0{fwd}", "-device", "virtio-net-pci,netdev=net0"]
    if cfg.agent_socket is not None:
        argv += ["-device", "virtio-serial-pci,id=vser0",
                 "-chardev", f"socket,id=agent,path={cfg.agent_socket},server=on,wait=off",
                 "-device", f"virtserialport,bus=vser0.0,chardev=agent,name={AGENT_PORT}"]
    if cfg.qmp_socket is not None:
        argv += ["-qmp", f"unix:{cfg.qmp_socket},server=on,wait=off"]
    if cfg.no_reboot:
        argv += ["-no-reboot"]
    argv += list(cfg.extra)
    return argv
