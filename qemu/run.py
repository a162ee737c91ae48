"""`qemu/run`: build the dev image if needed and boot it."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from qemu.arch import Arch
from qemu.build import DISK_ROOT_CMDLINE, VERBOSE_KERNEL, Image, build
from qemu.util import StepFailed, cache_dir, die, log
from qemu.vm import VMConfig, accel, forced_accel, qemu_argv, state_device


def port_pair(text: str) -> tuple[int, int]:
    """--forward's HOST:GUEST (TCP port numbers)."""
    host, sep, guest = text.partition(":")
    if sep and host.isdigit() and guest.isdigit() and 0 < int(host) < 65536 and 0 < int(guest) < 65536:
        return int(host), int(guest)
    raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:GUEST port numbers, e.g. --forward 8080:80")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="qemu/run", description="Build (if needed) and boot Exosphere OS in QEMU")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--graphical", action="store_true", help="open a window (the graphical console)")
    mode.add_argument("--headless", action="store_true",
                      help="no window, no terminal interaction: serial console to stdout (CI)")
    p.add_argument("--memory", type=int, default=1024, metavar="MB")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--state-disk", type=Path, metavar="IMG",
                   help="persistent state disk image (created, 1 GiB sparse, if missing), mounted on "
                        "/var/lib/exosphere (direct boots)")
    boot = p.add_mutually_exclusive_group()
    boot.add_argument("--iso", action="store_true", help="boot the hybrid ISO as a CD instead of direct boot")
    boot.add_argument("--iso-disk", action="store_true", help="boot the hybrid ISO as a hard disk")
    boot.add_argument("--disk-root", action="store_true",
                      help="direct boot through the busybox stage 1 and an ext4 root disk (writes discarded)")
    boot.add_argument("--systemd", action="store_true",
                      help="the systemd variant: the same system and capsules, with systemd as PID 1 (for comparison)")
    p.add_argument("--uefi", action="store_true",
                   help="UEFI firmware (OVMF) instead of SeaBIOS (ISO boots; arm64 ISO boots are always UEFI)")
    p.add_argument("--arch", type=Arch, choices=list(Arch), default=Arch.AMD64,
                   help="the image's architecture: arm64 boots under qemu-system-aarch64 -M virt (TCG)")
    p.add_argument("--forward", action="append", default=[], type=port_pair, metavar="HOST:GUEST",
                   help="forward a host TCP port (on 127.0.0.1) to a guest port")
    p.add_argument("--append", default="", help="extra kernel command line (direct boot)")
    p.add_argument("--verbose-kernel", action="store_true",
                   help=f"the kernel's messages on the console too (direct boot: appends {VERBOSE_KERNEL}; "
                        "the ISO's debug entry does the same)")
    return p.parse_args(argv)


def vm_config(args: argparse.Namespace, image: Image) -> VMConfig:
    """The VM qemu/run boots: `image` booted as the arguments say."""
    cfg = VMConfig(
        kernel=None if (args.iso or args.iso_disk) else image.kernel,
        initrd=None if (args.iso or args.iso_disk) else image.stage1 if args.disk_root else image.initrd,
        cmdline=" ".join(filter(None, (DISK_ROOT_CMDLINE if args.disk_root else image.cmdline,
                                       VERBOSE_KERNEL if args.verbose_kernel else "", args.append))),
        root_disk=image.root_disk if args.disk_root else None,
        cdrom=image.iso if args.iso else None,
        disk=image.iso if args.iso_disk else None,
        uefi=args.uefi, state_disk=args.state_disk, memory_mb=args.memory, cpus=args.cpus,
        graphical=args.graphical, serial="stdio" if args.headless else "mon:stdio",
        qmp_socket=cache_dir() / "run-qmp.sock", hostfwd=tuple(args.forward), no_reboot=args.headless,
        probe_kernel=image.kernel, arch=args.arch,
    )
    if args.state_disk is not None and cfg.kernel is not None:  # (the ISO's command line is its grub.cfg)
        cfg = replace(cfg, cmdline=f"{cfg.cmdline} exo.state={state_device(cfg)}")
    return cfg


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if os.geteuid() != 0:
        die("qemu/run builds the image, which needs root", hint="run it as root, or through sudo")
    try:
        forced_accel()  # (a bad EXO_ACCEL is said before the build, not after it)
        image = build(iso=args.iso or args.iso_disk, disk_root=args.disk_root,
                      init="systemd" if args.systemd else "exo_init", arch=args.arch)
        state = args.state_disk
        if state is not None and not state.exists():
            with open(state, "wb") as fh:
                fh.truncate(1 << 30)
        cfg = vm_config(args, image)
        argv_ = qemu_argv(cfg)
        how = "headless" if args.headless else "Ctrl-A X quits"
        log(f"booting {args.arch} with {accel(image.kernel, args.arch).upper()} ({how})")
    except StepFailed as e:
        die(str(e))
    log("$ " + " ".join(argv_))
    sys.stdout.flush()
    os.execvp(argv_[0], argv_)


if __name__ == "__main__":
    main()
