"""Build the dev image from Debian packages.

The image is an initramfs that *is* the root filesystem: the kernel unpacks it into RAM and
execs /sbin/exo_init (Python) as PID 1 directly, with no stage 1 (tests/bench/boot.py measures
that against a stage 1 that mounts a root disk; the figures are in the README). It is made of
concatenated cpio segments, each cached by content:

  base   Debian bookworm from mmdebstrap (this machine's apt sources), pruned; keyed by the
         package list and the builder version.            ~/.cache/exosphere/base-<key>/
  layer  exo_init, corecaps, the Nix-rendered manifest;    ~/.cache/exosphere/image-<key>/
         extra layers (the test suite's guest agent) come after it and win.

Outputs: vmlinuz + initrd.img for direct boot, and a hybrid ISO (BIOS + UEFI, CD or disk);
with `disk_root`, also the stage-1 variant the choice was measured against (qemu/stage1.py).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from exo_init.pid1.manifest import parse_manifest
from qemu.kmods import load_order, missing_modules
from qemu.stage1 import ROOT_LABEL, build_root_disk, build_stage1_initrd, unpack
from qemu.util import StepFailed, cache_dir, die, log, repo_root, run, sha256_of, step, write_cpio

BUILDER_VERSION = "3"
SUITE = "bookworm"
PACKAGES = (
    "python3", "python3-psutil", "python3-pyroute2", "python3-pydbus", "python3-gi", "python3-pexpect",
    "python3-cairo", "python3-cffi-backend", "libwayland-server0", "libwayland-client0",
    "dbus", "kmod", "linux-image-amd64", "iproute2", "procps", "e2fsprogs",
    "libseccomp2",  # capabilities.seccomp_deny (exo_init/pid1/scope.py loads it through ctypes)
    "libglib2.0-bin", "udhcpc",  # gdbus (D-Bus calls from the shell); busybox's DHCP client
    "libxkbcommon0", "xkb-data",  # Nexquelium's keymaps (exo_init/system/nexquelium/xkb.py, through ctypes)
)
# Kernel modules the image ships besides the ones the manifest loads at boot (`kernelModules` in
# nixos-modules/capsules.nix): drivers for the displays, disks and NICs of QEMU and VirtualBox.
# Their dependencies are added from modules.dep; every other module is removed.
IMAGE_MODULES = (
    "virtio_pci", "virtio_scsi", "virtio_input",
    "virtio_gpu", "virtio_balloon", "bochs", "vmwgfx", "cirrus", "drm_vram_helper",
    # ext4 asks for crc32c when it mounts a filesystem with metadata checksums (mkfs.ext4's
    # default): a soft dependency that modules.dep does not list.
    "crc32c_generic", "crc32c_intel",
    "ext4", "vfat", "isofs", "squashfs", "overlay", "loop", "sr_mod", "sd_mod", "ahci", "ata_piix",
    "e1000", "e1000e", "veth", "af_packet", "evdev", "psmouse", "ptp", "9pnet_virtio", "9p",
)
PRUNE = (
    "boot", "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
    "usr/share/bug", "usr/share/perl", "usr/share/perl5", "usr/lib/x86_64-linux-gnu/perl",
    "usr/lib/x86_64-linux-gnu/perl-base", "usr/lib/x86_64-linux-gnu/perl5", "var/cache/apt",
    "var/lib/apt/lists", "var/log", "usr/share/initramfs-tools", "etc/initramfs-tools", "usr/lib/firmware",
)
DBUS_POLICY = Path("dbus/org.exosphere.Core1.conf")  # (relative to the repository)
CONSOLES = "console=tty0 console=ttyS0,115200 panic=10"
KERNEL_CMDLINE = f"rdinit=/sbin/exo_init {CONSOLES}"
DISK_ROOT_CMDLINE = f"{CONSOLES} exo.root=LABEL={ROOT_LABEL}"  # stage 1 (/init) finds the root disk

EXO_INIT_SCRIPT = """#!/usr/bin/python3 -I
import sys
sys.path.insert(0, "/usr/lib/exosphere")
from exo_init.{module} import main
main()
"""


@dataclass(frozen=True)
class Layer:
    """Extra content on top of the system: Nix files adding capsules, and files to install."""

    name: str
    nix_extra: tuple[Path, ...] = ()
    files: tuple[tuple[Path, str], ...] = ()   # (source on the host, absolute path in the image)


@dataclass(frozen=True)
class Image:
    kernel: Path
    initrd: Path
    iso: Path | None
    manifest: Path
    cmdline: str = KERNEL_CMDLINE
    sizes: dict[str, int] = field(default_factory=dict)
    stage1: Path | None = None          # the disk-root variant (qemu/stage1.py): its initramfs ...
    root_disk: Path | None = None       # ... and the root filesystem it mounts


def _key(*parts: str | Path) -> str:
    return sha256_of(BUILDER_VERSION, *parts)


# --- base: Debian root filesystem -------------------------------------------------------------------

def build_rootfs(dest: Path) -> None:
    """mmdebstrap into directory `dest` (made under a temporary name, renamed when complete)."""
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    run([
        "mmdebstrap", "--variant=essential", f"--include={','.join(PACKAGES)}",
        "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-include=/usr/share/locale/C.UTF-8/*",
        "--aptopt=APT::Install-Recommends false", "--format=directory",
        SUITE, tmp,
    ])
    tmp.rename(dest)


def prune(root: Path, modules: Sequence[str]) -> str:
    """Remove what a booted Exosphere system never uses; returns the kernel version."""
    for rel in PRUNE:
        target = root / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    (root / "var/log").mkdir(exist_ok=True)
    versions = sorted(p.name for p in (root / "usr/lib/modules").iterdir())
    if len(versions) != 1:
        raise StepFailed(f"expected one kernel in the rootfs, found {versions}")
    kver = versions[0]
    moddir = root / "usr/lib/modules" / kver
    keep = set(load_order(moddir, modules))
    missing = missing_modules(moddir, modules)
    if missing:
        raise StepFailed(f"kernel {root.name}: no module named {', '.join(missing)} (neither built in nor a .ko)")
    removed = 0
    for ko in moddir.rglob("*.ko*"):
        if str(ko.relative_to(moddir)) not in keep:
            ko.unlink()
            removed += 1
    log(f"kernel {kver}: kept {len(keep)} modules, removed {removed}")
    run(["chroot", root, "/usr/sbin/depmod", "-a", kver])  # the image's own kmod
    return kver


def boot_modules() -> list[str]:
    """`kernelModules` of the default capsule set (the kmod capsule loads them at boot)."""
    expr = f"(import {repo_root() / 'nixos-modules' / 'capsules.nix'}).kernelModules"
    return list(json.loads(run(["nix-instantiate", "--store", "dummy://", "--eval", "--strict", "--json", "-E", expr],
                               capture=True).stdout))


def build_base(cache: Path) -> Path:
    """cache/base-<key>/{vmlinuz,base.cpio,kver}, built once per package and module list."""
    modules = sorted({*IMAGE_MODULES, *boot_modules()})
    key = _key(SUITE, *PACKAGES, *modules, *PRUNE)
    out = cache / f"base-{key}"
    if (out / "base.cpio").exists():
        log(f"base {key}: cached")
        return out
    out.mkdir(parents=True, exist_ok=True)
    staging = out / "rootfs"
    if not staging.is_dir():  # (an interrupted prune is simply redone: it is idempotent)
        with step(f"mmdebstrap {SUITE} ({len(PACKAGES)} packages)"):
            build_rootfs(staging)
    with step("prune"):
        kernels = sorted((staging / "boot").glob("vmlinuz-*"))
        if kernels:
            shutil.copy2(kernels[-1], out / "vmlinuz")
        elif not (out / "vmlinuz").exists():  # (a redone prune finds /boot gone, the kernel saved)
            raise StepFailed("no /boot/vmlinuz-* in the rootfs: is linux-image-amd64 in PACKAGES?")
        kver = prune(staging, modules)
        (out / "kver").write_text(kver + "\n")
    # Uncompressed on purpose: under TCG the kernel unpacks 170 MB of plain cpio in ~4 s, while
    # zstd took 8 s and the kernel's unzstd rejects a cpio segment appended after it.
    with step("pack base.cpio"):
        write_cpio(staging, out / "base.cpio")
    shutil.rmtree(staging)
    return out


# --- pinned wheels from PyPI: pywayland (see exo_init/system/nexquelium/wlfix.py), wasmtime -------------

PYWAYLAND = "pywayland==0.4.19"  # the version exo_init.system.nexquelium.wlfix fixes (PYWAYLAND_VERSION)
WASMTIME = "wasmtime==50.0.1"    # the WebAssembly runtime (exo_init/runtimes/wasm.py); qemu/setup-host pins the same
WHEELS = (PYWAYLAND, WASMTIME)   # installed into the image's dist-packages
# Every platform tag a wheel for the image may carry: bookworm has glibc 2.36, so manylinux_2_36
# down to manylinux_2_17 and their legacy aliases (manylinux2014/2010/1). pip accepts a wheel only
# for a tag it is given: with manylinux_2_34 alone it took wasmtime's py3-none-any wheel (which
# holds only a Windows DLL, so `import wasmtime` failed) and found no manylinux1 wheel at all.
MANYLINUX_TAGS = (*(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)),
                  "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")


def pip_download_argv(requirement: str, dest: Path) -> list[str | Path]:
    """`pip download` of `requirement`'s wheel for the image: CPython 3.11 (bookworm's python3),
    x86_64 Linux, every manylinux tag glibc 2.36 runs; binary wheels only, no dependencies."""
    platforms = [arg for tag in MANYLINUX_TAGS for arg in ("--platform", tag)]
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
            "--implementation", "cp", *platforms, "-d", dest, requirement]


def wheel_dir(cache: Path, requirement: str) -> Path:
    """The pinned wheel of `requirement` ("name==version"), downloaded once (cache/wheels/) and
    unpacked once per version into cache/<name>-<version>/ (a directory to put on sys.path, or to
    copy into dist-packages). StepFailed if the wheel is not for Linux (a py3-none-any wheel of a
    package that has Linux wheels is the wrong one)."""
    name, version = requirement.split("==", 1)
    out = cache / f"{name}-{version}"
    if (out / name / "__init__.py").exists():
        return out
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob(f"{name}-{version}-*manylinux*.whl"))
    if not found:
        run(pip_download_argv(requirement, wheels))
        found = sorted(wheels.glob(f"{name}-{version}-*manylinux*.whl"))
    if not found:
        others = sorted(p.name for p in wheels.glob(f"{name}-{version}-*.whl"))
        raise StepFailed(f"pip download {requirement} left no manylinux wheel in {wheels} (found: {others or 'none'})")
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    with zipfile.ZipFile(found[-1]) as wheel:
        wheel.extractall(tmp)
    for so in tmp.rglob("*.so*"):
        so.chmod(0o755)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def pywayland_dir(cache: Path) -> Path:
    """The pinned pywayland wheel (manylinux, CPython 3.11 as in the image; it vendors
    libwayland-client/-server and libffi), unpacked."""
    return wheel_dir(cache, PYWAYLAND)


# --- layer: Exosphere itself ------------------------------------------------------------------------

def render_manifest(nix_extra: Sequence[Path]) -> str:
    """The manifest JSON from the Nix declaration (nixos-modules/render.nix), checked by exo_init's
    own loader before it goes into the image."""
    render = repo_root() / "nixos-modules" / "render.nix"
    argv: list[str | Path] = ["nix-instantiate", "--store", "dummy://", "--eval", "--strict", "--json", render]
    if nix_extra:
        argv += ["--arg", "extra", "[ " + " ".join(str(p.resolve()) for p in nix_extra) + " ]"]
    text = run(argv, capture=True).stdout
    manifest = parse_manifest(json.loads(text), "rendered manifest")
    if manifest.errors:
        raise StepFailed("the rendered manifest has errors:\n" + "\n".join(map(str, manifest.errors.values())))
    return json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def stage_layer(dest: Path, manifest_json: str, layers: Sequence[Layer]) -> None:
    root = repo_root()
    lib = dest / "usr/lib/exosphere"
    for pkg in ("exo_init", "corecaps"):
        if (root / pkg).is_dir():
            shutil.copytree(root / pkg, lib / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path, module in (("usr/sbin/exo_init", "pid1.main"), ("usr/bin/exoctl", "client.exoctl")):
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(EXO_INIT_SCRIPT.format(module=module))
        target.chmod(0o755)
    (dest / "init").symlink_to("/usr/sbin/exo_init")
    etc = dest / "etc/exosphere"
    etc.mkdir(parents=True)
    (etc / "manifest.json").write_text(manifest_json)
    policy = dest / "usr/share/dbus-1/system.d" / DBUS_POLICY.name  # the bus policy for Core1
    policy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / DBUS_POLICY, policy)
    for layer in layers:
        for src, target_path in layer.files:
            target = dest / target_path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                                dirs_exist_ok=True)
            else:
                shutil.copy2(src, target)
    dist = dest / "usr/lib/python3/dist-packages"  # pywayland (compositor, dashboard), wasmtime (wasm capsules)
    for requirement in WHEELS:
        shutil.copytree(wheel_dir(cache_dir(), requirement), dist, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    # Byte-compile with the host's Python 3.11 (same bytecode as the image's): no compile at boot.
    run([sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", lib, dist])


GRUB_CFG = """set timeout=1
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry "Exosphere OS" {{
    linux /boot/vmlinuz {cmdline}
    initrd /boot/initrd.img
}}
menuentry "Exosphere OS (debug)" {{
    linux /boot/vmlinuz {cmdline} exo.debug
    initrd /boot/initrd.img
}}
"""


def build_iso(kernel: Path, initrd: Path, dest: Path, work: Path, *, cmdline: str = KERNEL_CMDLINE,
              xorriso_extra: Sequence[str] = ()) -> None:
    """grub-mkrescue: a hybrid image that boots under BIOS and UEFI, as a CD or as a disk.
    `xorriso_extra` goes to xorriso (the appliance appends its state partition that way)."""
    isoroot = work / "isoroot"
    if isoroot.exists():
        shutil.rmtree(isoroot)
    (isoroot / "boot/grub").mkdir(parents=True)
    shutil.copy2(kernel, isoroot / "boot/vmlinuz")
    shutil.copy2(initrd, isoroot / "boot/initrd.img")
    (isoroot / "boot/grub/grub.cfg").write_text(GRUB_CFG.format(cmdline=cmdline))
    tmp = dest.with_name(dest.name + ".tmp")
    run(["grub-mkrescue", "-o", tmp, isoroot, "--", "-volid", "EXOSPHERE", *xorriso_extra], capture=True)
    tmp.rename(dest)
    shutil.rmtree(isoroot)


def build(layers: Sequence[Layer] = (), iso: bool = True, disk_root: bool = False) -> Image:
    """Build (or find in the cache) the image. Concurrent builds wait for each other: two
    mmdebstraps into one cache entry would destroy each other's tree."""
    cache = cache_dir()
    with open(cache / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another build to finish (lock {cache / '.lock'})")
            fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(cache, layers, iso, disk_root)


def _build(cache: Path, layers: Sequence[Layer], iso: bool, disk_root: bool) -> Image:
    started = time.monotonic()
    with step("build Exosphere dev image"):
        base = build_base(cache)
        with step("render manifest (nix-instantiate)"):
            manifest_json = render_manifest([p for layer in layers for p in layer.nix_extra])
        root = repo_root()
        key = _key(base.name, manifest_json, *WHEELS, root / "exo_init", root / "corecaps", Path(__file__),
                   root / DBUS_POLICY, *(root / "qemu" / f for f in ("stage1.py", "stage1-init", "kmods.py")),
                   *(f"{layer.name}:{src}:{dst}" for layer in layers for src, dst in layer.files),
                   *(src for layer in layers for src, _ in layer.files))
        name = "+".join(["exosphere", *(layer.name for layer in layers)])
        out = cache / f"image-{key}"
        initrd = out / "initrd.img"
        iso_path = out / f"{name}.iso"
        if not (initrd.exists() and (out / "layer.cpio").exists()):
            work = out / "work"
            if work.exists():
                shutil.rmtree(work)
            with step(f"layer {name}"):
                stage_layer(work / "layer", manifest_json, layers)
                write_cpio(work / "layer", work / "layer.cpio")
            with open(out / "initrd.tmp", "wb") as dst:
                for part in (base / "base.cpio", work / "layer.cpio"):
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, dst, 1 << 20)
            (work / "layer.cpio").rename(out / "layer.cpio")  # (kept for the disk-root variant)
            (out / "manifest.json").write_text(manifest_json)
            (out / "initrd.tmp").rename(initrd)
            shutil.rmtree(work)
        else:
            log(f"image {key}: cached")
        if iso and not iso_path.exists():
            with step("hybrid ISO (grub-mkrescue, BIOS + UEFI)"):
                build_iso(base / "vmlinuz", initrd, iso_path, out)
        stage1, root_disk = out / "stage1.img", out / "root.ext4"
        if disk_root and not (stage1.exists() and root_disk.exists()):
            with step("disk-root variant (stage 1 + ext4 root)"):
                work = out / "work"
                if work.exists():
                    shutil.rmtree(work)
                unpack((base / "base.cpio", out / "layer.cpio"), work / "tree")
                build_root_disk(work / "tree", root_disk)
                build_stage1_initrd(work / "tree", (base / "kver").read_text().strip(), stage1, work)
                shutil.rmtree(work)
    image = Image(kernel=base / "vmlinuz", initrd=initrd, iso=iso_path if iso else None,
                  manifest=out / "manifest.json", stage1=stage1 if disk_root else None,
                  root_disk=root_disk if disk_root else None)
    sizes = {"kernel": image.kernel.stat().st_size, "initrd": initrd.stat().st_size}
    if image.iso is not None:
        sizes["iso"] = image.iso.stat().st_size
    if image.stage1 is not None and image.root_disk is not None:
        sizes["stage1"] = image.stage1.stat().st_size
        sizes["root.ext4 (allocated)"] = image.root_disk.stat().st_blocks * 512
    log("image: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items())
        + f"; built in {time.monotonic() - started:.1f} s")
    log(f"  kernel {image.kernel}\n  initrd {image.initrd}" + (f"\n  iso    {image.iso}" if image.iso else "")
        + (f"\n  stage1 {image.stage1}\n  root   {image.root_disk}" if image.root_disk else ""))
    return replace(image, sizes=sizes)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="qemu/build", description="Build the Exosphere dev image")
    p.add_argument("--no-iso", action="store_true", help="only kernel + initrd")
    p.add_argument("--disk-root", action="store_true", help="also the stage-1 initramfs and the ext4 root disk")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        die("building the image needs root (mmdebstrap, device nodes, file ownership)", hint="run it with sudo")
    try:
        build(iso=not args.no_iso, disk_root=args.disk_root)
    except StepFailed as e:
        die(str(e))


if __name__ == "__main__":
    main()
