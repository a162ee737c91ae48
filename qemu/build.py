"""Build the dev image from Debian packages.

The image is an initramfs that *is* the root filesystem: the kernel unpacks it into RAM and
execs /sbin/exo_init (Python) as PID 1 directly, with no stage 1 (tests/bench/boot.py measures
that against a stage 1 that mounts a root disk; the figures are in the README). It is made of
concatenated cpio segments, each cached by content:

  base   Debian bookworm from mmdebstrap (this machine's apt sources), pruned; keyed by the
         package list and the builder version.            ~/.cache/exosphere/base-<key>/
         For a foreign architecture (arm64 here: `--arch arm64`) an extract-only bootstrap that
         the builder configures itself (qemu/foreign.py; no maintainer script can run).
  layer  exo_init, corecaps, the Nix-rendered manifest;    ~/.cache/exosphere/image-<key>/
         extra layers (the test suite's guest agent) come after it and win.

Outputs: vmlinuz + initrd.img for direct boot, and a hybrid ISO (BIOS + UEFI, CD or disk);
with `disk_root`, also the stage-1 variant the choice was measured against (qemu/stage1.py).

The systemd variant (`init="systemd"`, tests/bench/versus.py compares the two) is the same base
plus systemd-sysv (a base of its own, cached by content the same way; the kernel must be the same
version), the same layers, and the same Nix-rendered manifest's capsules as systemd units written
by `exoctl export-systemd`'s translator; systemd is its init.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from corecaps.crushcap import RUNNER_GLOBALS
from crush.casm import encode
from crush.cli import Failure, load_program
from crush.link import LinkError, globals_of, link
from crush.verify import VerifyError, verify
from crush.vm import prelude
from exo_init.pid1.manifest import parse_manifest
from qemu import cross, foreign
from qemu.arch import Arch, Platform, is_foreign, platform
from qemu.cross import CffiSource
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
    "dumb-init",  # a scoped capsule's namespace init (exo_init/pid1/spawn.py): 0.1 MB where Python's held 3
    "libxkbcommon0", "xkb-data",  # Nexquelium's keymaps (exo_init/system/nexquelium/xkb.py, through ctypes)
)  # (for amd64: `packages()` puts the platform's own kernel package in linux-image-amd64's place)
# Kernel modules the image ships besides the ones the manifest loads at boot (`kernelModules` in
# nixos-modules/capsules.nix) are the platform's (qemu/arch.py: drivers for the displays, disks and
# NICs of QEMU and VirtualBox). Their dependencies are added from modules.dep; every other module
# is removed. ext4 asks for crc32c when it mounts a filesystem with metadata checksums (mkfs.ext4's
# default): a soft dependency that modules.dep does not list, hence crc32c_* in the lists.
PRUNE = (
    "boot", "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
    "usr/share/bug", "usr/share/perl", "usr/share/perl5", "usr/lib/x86_64-linux-gnu/perl",
    "usr/lib/x86_64-linux-gnu/perl-base", "usr/lib/x86_64-linux-gnu/perl5", "var/cache/apt",
    "var/lib/apt/lists", "var/log", "usr/share/initramfs-tools", "etc/initramfs-tools", "usr/lib/firmware",
)
# What a foreign architecture's base prunes besides PRUNE: the device trees (QEMU's virt machine
# makes its own).
FOREIGN_PRUNE = ("usr/lib/linux-image-*",)
DBUS_POLICY = Path("dbus/org.exosphere.Core1.conf")  # (relative to the repository)
CONSOLES = "console=tty0 console=ttyS0,115200 panic=10"
# The kernel's console is quiet as distributions boot it (`quiet`: only warnings and errors), so the
# console shows exo_init's status lines, not ahci/drm/ata lines between them. VERBOSE_KERNEL, later
# on the command line, wins: `qemu/run --verbose-kernel`, the ISO's debug entry, the boot benchmarks.
QUIET = "quiet"
VERBOSE_KERNEL = "loglevel=7"
KERNEL_CMDLINE = f"rdinit=/sbin/exo_init {CONSOLES} {QUIET}"
DISK_ROOT_CMDLINE = f"{CONSOLES} {QUIET} exo.root=LABEL={ROOT_LABEL}"  # stage 1 (/init) finds the root disk

# --- the systemd variant ---
SYSTEMD_PACKAGES = ("systemd-sysv",)
# systemd boots straight to the capsules' target (reaching it = every capsule ready). udev keeps the
# kernel's interface names (eth0, as exo_init's image has no udev to rename them).
# (`loglevel=4` is `quiet` for the kernel alone: systemd reads `quiet` too and would hide its status lines.)
SYSTEMD_CMDLINE = f"rdinit=/sbin/init systemd.unit=exosphere.target net.ifnames=0 {CONSOLES} loglevel=4"
# exo_init's own management plane: its anomaly watcher, its D-Bus API and its status display talk
# to exo_init's control socket and cannot run without it. systemd's counterparts are part of it (its
# D-Bus API, `systemctl status`), so the systemd variant runs every other capsule, not these.
EXO_INIT_PLANE = ("sentry", "dbus-bridge", "dashboard")
# What exo_init does for capsules before any starts, and systemd needs said: the runtime directories
# (tmpfiles.d), and the system bus is the dbus capsule's alone (Debian's own dbus units masked).
SYSTEMD_TMPFILES = (
    "d /run/exosphere 0755 root root -\nd /run/exosphere/wayland 0755 root root -\n"
    "d /run/exosphere/display 0755 root root -\n"  # (the compositor's grant: exo_init writes clients.json there)
)
SYSTEMD_MASKED = ("dbus.socket", "dbus.service")
MACHINE_ID = "3c0d5e5a1e8f4c6fa0b7e1d2c3b4a596"  # fixed: no first-boot units (systemd-firstboot would prompt)

EXO_INIT_SCRIPT = """#!/usr/bin/python3 {flags}
import sys
sys.path.insert(0, "/usr/lib/exosphere")
from {module} import main
sys.exit(main())
"""
CRUSH_PROGRAMS = "corecaps/crush"                   # CRUSH programs in the Python subset (the repository's)
CRUSH_PROGRAMS_DIR = "/usr/share/exosphere/crush"  # ... compiled to CASM in the image (render.nix: crushPrograms)


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
    arch: Arch = Arch.AMD64
    sizes: dict[str, int] = field(default_factory=dict)
    stage1: Path | None = None          # the disk-root variant (qemu/stage1.py): its initramfs ...
    root_disk: Path | None = None       # ... and the root filesystem it mounts


def _key(*parts: str | Path) -> str:
    return sha256_of(BUILDER_VERSION, *parts)


def kernel_cmdline(arch: Arch) -> str:
    """The direct-boot command line: the platform's serial port is the last console (/dev/console)."""
    return KERNEL_CMDLINE.replace("ttyS0", platform(arch).serial)


def packages(arch: Arch) -> tuple[str, ...]:
    return tuple(platform(arch).kernel_package if p == "linux-image-amd64" else p for p in PACKAGES)


def prune_paths(arch: Arch) -> tuple[str, ...]:
    triplet = platform(arch).triplet
    own = tuple(p.replace("x86_64-linux-gnu", triplet) for p in PRUNE)
    return (*own, *FOREIGN_PRUNE) if is_foreign(arch) else own


# --- base: Debian root filesystem -------------------------------------------------------------------

MERGED_USR_HOOK = "/usr/share/mmdebstrap/hooks/merged-usr/setup00.sh"  # (mmdebstrap's own)


def build_rootfs(dest: Path, packages: Sequence[str], arch: Arch = Arch.AMD64) -> None:
    """mmdebstrap `packages` into directory `dest` (made under a temporary name, renamed when
    complete). A foreign architecture gets the essential set and the packages extracted,
    unconfigured, into a merged-/usr tree (as the native bootstrap makes it); qemu/foreign.py
    configures it."""
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    variant = ["--variant=essential"]
    if is_foreign(arch):
        variant = ["--variant=extract", f"--architectures={arch}", "--include=?essential",
                   f"--setup-hook={MERGED_USR_HOOK}"]
    run([
        "mmdebstrap", *variant, f"--include={','.join(packages)}",
        "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-include=/usr/share/locale/C.UTF-8/*",
        "--aptopt=APT::Install-Recommends false", "--format=directory",
        SUITE, tmp,
    ])
    if is_foreign(arch):
        with step(f"configure the {arch} bootstrap (qemu/foreign.py)"):
            foreign.configure(tmp)
    tmp.rename(dest)


def prune(root: Path, modules: Sequence[str], arch: Arch = Arch.AMD64) -> str:
    """Remove what a booted Exosphere system never uses; returns the kernel version."""
    for pattern in prune_paths(arch):
        for target in root.glob(pattern) if "*" in pattern else [root / pattern]:
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
    if not (moddir / "modules.dep").exists():  # (an extract-only bootstrap: the kernel's postinst did not run)
        run(["depmod", "-b", root, kver])
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
    # The host's depmod (bookworm's kmod, as the image's): it also runs for a foreign kernel.
    run(["depmod", "-b", root, kver])
    return kver


def boot_modules() -> list[str]:
    """`kernelModules` of the default capsule set (the kmod capsule loads them at boot)."""
    expr = f"(import {repo_root() / 'nixos-modules' / 'capsules.nix'}).kernelModules"
    return list(json.loads(run(["nix-instantiate", "--store", "dummy://", "--eval", "--strict", "--json", "-E", expr],
                               capture=True).stdout))


def build_base(cache: Path, arch: Arch = Arch.AMD64, extra_packages: Sequence[str] = ()) -> Path:
    """cache/base-<key>/{vmlinuz,base.cpio,kver}, built once per architecture, package and module list."""
    plat = platform(arch)
    modules = sorted({*plat.modules, *boot_modules()})
    pkgs = (*packages(arch), *extra_packages)
    parts: tuple[str | Path, ...] = (SUITE, *pkgs, *modules, *prune_paths(arch))
    if is_foreign(arch):  # (amd64's key stays what it was before there were other architectures)
        parts = (*parts, str(arch), Path(foreign.__file__))
    key = _key(*parts)
    out = cache / f"base-{key}"
    if (out / "base.cpio").exists():
        log(f"base {key}: cached")
        return out
    out.mkdir(parents=True, exist_ok=True)
    staging = out / "rootfs"
    if not staging.is_dir():  # (an interrupted prune is simply redone: it is idempotent)
        with step(f"mmdebstrap {SUITE} {arch} ({len(pkgs)} packages)"):
            build_rootfs(staging, pkgs, arch)
    with step("prune"):
        kernels = sorted((staging / "boot").glob("vmlinuz-*"))
        if kernels:
            shutil.copy2(kernels[-1], out / "vmlinuz")
        elif not (out / "vmlinuz").exists():  # (a redone prune finds /boot gone, the kernel saved)
            raise StepFailed(f"no /boot/vmlinuz-* in the rootfs: is {plat.kernel_package} in the packages?")
        kver = prune(staging, modules, arch)
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
# tree-sitter and its Python, JavaScript and Rust grammars: `crush compile prog.py|.js|.rs` in the image
# (crush/walkers/; qemu/setup-host pins the same). The image's own CRUSH programs are compiled here, at build time.
TREE_SITTER = ("tree-sitter==0.26.1", "tree-sitter-python==0.25.0", "tree-sitter-javascript==0.25.0",
               "tree-sitter-rust==0.24.2")
WHEELS = (PYWAYLAND, WASMTIME, *TREE_SITTER)  # installed into the image's dist-packages
# Built from their sdists where PyPI has no wheel for the architecture (qemu/cross.py): pywayland's
# manylinux wheels are x86_64 only, and bookworm has no python3-pywayland. Its extension links
# Debian's libwayland-client0/-server0 (in PACKAGES) where the x86_64 wheel vendors its own.
FROM_SOURCE = {Arch.ARM64: {PYWAYLAND: CffiSource(PYWAYLAND, "pywayland/ffi_build.py", "ffi_builder",
                                                  ("libwayland-dev",))}}


def package_dir(cache: Path, requirement: str, arch: Arch) -> Path:
    """The files of `requirement` for `arch` to copy into dist-packages: its wheel's, or, where
    FROM_SOURCE says, its sdist's with the extension cross-compiled."""
    source = FROM_SOURCE.get(arch, {}).get(requirement)
    return cross.package_dir(cache, source, arch, SUITE) if source else wheel_dir(cache, requirement, arch)


# Every platform tag a wheel for the image may carry: bookworm has glibc 2.36, so manylinux_2_36
# down to manylinux_2_17 and their legacy aliases (manylinux2014/2010/1; aarch64 has no 2010 or 1,
# pip just finds none). pip accepts a wheel only for a tag it is given: with manylinux_2_34 alone it
# took wasmtime's py3-none-any wheel (which holds only a Windows DLL, so `import wasmtime` failed)
# and found no manylinux1 wheel at all.
def manylinux_tags(arch: Arch = Arch.AMD64) -> tuple[str, ...]:
    m = platform(arch).machine
    return (*(f"manylinux_2_{minor}_{m}" for minor in range(36, 16, -1)),
            f"manylinux2014_{m}", f"manylinux2010_{m}", f"manylinux1_{m}")


def pip_download_argv(requirement: str, dest: Path, arch: Arch = Arch.AMD64) -> list[str | Path]:
    """`pip download` of `requirement`'s wheel for the image: CPython 3.11 (bookworm's python3),
    `arch`'s Linux, every manylinux tag glibc 2.36 runs; binary wheels only, no dependencies."""
    platforms = [arg for tag in manylinux_tags(arch) for arg in ("--platform", tag)]
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
            "--implementation", "cp", *platforms, "-d", dest, requirement]


def wheel_dir(cache: Path, requirement: str, arch: Arch = Arch.AMD64) -> Path:
    """The pinned wheel of `requirement` ("name==version") for `arch`, downloaded once (cache/wheels/)
    and unpacked once per version into cache/<name>-<version>/ (amd64; -<machine> appended for the
    others: a directory to put on sys.path, or to copy into dist-packages). StepFailed if the wheel
    is not for Linux (a py3-none-any wheel of a package that has Linux wheels is the wrong one)."""
    name, version = requirement.split("==", 1)
    name = name.replace("-", "_")  # the wheel's and the import package's spelling
    machine = platform(arch).machine
    out = cache / (f"{name}-{version}" if arch is Arch.AMD64 else f"{name}-{version}-{machine}")
    if (out / name / "__init__.py").exists():
        return out
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pattern = f"{name}-{version}-*manylinux*_{machine}.whl"
    found = sorted(wheels.glob(pattern))
    if not found:
        run(pip_download_argv(requirement, wheels, arch))
        found = sorted(wheels.glob(pattern))
    if not found:
        others = sorted(p.name for p in wheels.glob(f"{name}-{version}-*.whl"))
        raise StepFailed(f"pip download {requirement} left no manylinux {machine} wheel in {wheels} "
                         f"(found: {others or 'none'})")
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

def compile_crush_programs(src: Path, dest: Path) -> None:
    """Each `src/*.py` (CRUSH's Python subset) compiled to `dest/NAME.casm` (walker, compiler,
    verifier: a program the verifier refuses fails the build, naming it). `src/_*.py` are libraries:
    each is linked (crush/link.py) before every program that reads a name it defines, and is not a
    program itself; the globals the CoreCaps' runner binds (corecaps/crushcap.py RUNNER_GLOBALS)
    need no module to define them."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        libraries = [load_program(str(s)) for s in sorted(src.glob("_*.py")) if s.name != "__init__.py"]
    except Failure as e:
        raise StepFailed(f"CRUSH library: {e}") from None
    for source in sorted(src.glob("*.py")):
        if source.name.startswith("_"):
            continue
        try:
            program = load_program(str(source))
            reads = globals_of(program)[1]
            used = [lib for lib in libraries if globals_of(lib)[0] & reads]
            if used:
                program = link([*used, program], provided=RUNNER_GLOBALS)
            verify(program, prelude().names)
        except (Failure, VerifyError, LinkError) as e:
            raise StepFailed(f"CRUSH program {source}: {e}") from None
        (dest / f"{source.stem}.casm").write_bytes(encode(program))


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


def stage_layer(dest: Path, manifest_json: str, layers: Sequence[Layer], arch: Arch = Arch.AMD64) -> None:
    root = repo_root()
    lib = dest / "usr/lib/exosphere"
    for pkg in ("exo_init", "corecaps", "crush"):
        if (root / pkg).is_dir():
            shutil.copytree(root / pkg, lib / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # exoctl without site (a third of its start-up): it loads site-packages itself for D-Bus only
    for path, module, flags in (("usr/sbin/exo_init", "exo_init.pid1.main", "-I"),
                                ("usr/bin/exoctl", "exo_init.client.exoctl", "-IS"),
                                ("usr/bin/crush", "crush.cli", "-I")):
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(EXO_INIT_SCRIPT.format(module=module, flags=flags))
        target.chmod(0o755)
    compile_crush_programs(root / CRUSH_PROGRAMS, dest / CRUSH_PROGRAMS_DIR.lstrip("/"))
    (dest / "init").symlink_to("/usr/sbin/exo_init")
    etc = dest / "etc/exosphere"
    etc.mkdir(parents=True)
    (etc / "manifest.json").write_text(manifest_json)
    # The host name has one source, the manifest (exo_init sets it; the dashboard shows it): the
    # base's /etc/hostname is the build host's (mmdebstrap copies it), so the layer writes the
    # manifest's over it (the systemd variant's systemd reads it too).
    (dest / "etc/hostname").write_text(json.loads(manifest_json)["hostname"] + "\n")
    policy = dest / "usr/share/dbus-1/system.d" / DBUS_POLICY.name  # the bus policy for Core1
    policy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / DBUS_POLICY, policy)
    for layer in layers:
        for src, target_path in layer.files:
            target = dest / target_path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():  # (symlinks stay symlinks: a layer may point into the image, e.g. /nix/store/x -> /usr)
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                                dirs_exist_ok=True, symlinks=True)
            else:
                shutil.copy2(src, target)
    dist = dest / "usr/lib/python3/dist-packages"  # pywayland (compositor, dashboard), wasmtime (wasm capsules)
    for requirement in WHEELS:
        shutil.copytree(package_dir(cache_dir(), requirement, arch), dist, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    # Byte-compile with the host's Python 3.11 (same bytecode as the image's): no compile at boot.
    run([sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", lib, dist])


def stage_systemd(dest: Path, manifest_json: str) -> list[str]:
    """The systemd variant's part of the layer: the manifest's capsules (except exo_init's own
    plane) as units in /etc/systemd/system, by the translator `exoctl export-systemd` uses; the
    runtime directories; Debian's dbus units masked; a machine id. Returns the unit names."""
    from exo_init.client.systemd_units import export  # noqa: PLC0415 (only this variant needs it)
    from exo_init.pid1.manifest import parse_manifest  # noqa: PLC0415

    manifest = parse_manifest(json.loads(manifest_json), "rendered manifest")
    workload = replace(manifest, capsules={n: c for n, c in manifest.capsules.items() if n not in EXO_INIT_PLANE})
    units = dest / "etc/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    written = []
    for unit in export(workload):
        (units / unit.name).write_text(unit.text)
        written.append(unit.name)
    for name in SYSTEMD_MASKED:
        (units / name).symlink_to("/dev/null")
    tmpfiles = dest / "usr/lib/tmpfiles.d/exosphere.conf"
    tmpfiles.parent.mkdir(parents=True, exist_ok=True)
    tmpfiles.write_text(SYSTEMD_TMPFILES)
    (dest / "etc/machine-id").write_text(MACHINE_ID + "\n")
    log(f"systemd: {len(written) - 1} capsule units and exosphere.target; not run: {', '.join(EXO_INIT_PLANE)}")
    return written


GRUB_CFG = """set timeout=1
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry "Exosphere OS" {{
    linux /boot/vmlinuz {cmdline}
    initrd /boot/initrd.img
}}
menuentry "Exosphere OS (debug: the kernel's messages, exo.debug)" {{
    linux /boot/vmlinuz {cmdline} {verbose} exo.debug
    initrd /boot/initrd.img
}}
"""


def grub_efi_dir(cache: Path, arch: Arch) -> Path:
    """GRUB's EFI modules for a foreign architecture (usr/lib/grub/<platform> of Debian's
    grub-efi-<arch>-bin, extracted: it is not installable on this host), once per suite."""
    plat = platform(arch)
    package = f"grub-efi-{arch}-bin"
    out = cache / f"grub-{plat.grub_efi}-{_key(SUITE, package)}"
    if (out / "modinfo.sh").exists():
        return out
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    run(["mmdebstrap", "--variant=extract", f"--architectures={arch}", f"--include={package}",
         "--format=directory", SUITE, tmp / "root"])
    src = tmp / "root/usr/lib/grub" / plat.grub_efi
    if not (src / "modinfo.sh").exists():
        raise StepFailed(f"{package} has no usr/lib/grub/{plat.grub_efi}/modinfo.sh")
    if out.exists():
        shutil.rmtree(out)
    src.rename(out)
    shutil.rmtree(tmp)
    return out


def build_iso(kernel: Path, initrd: Path, dest: Path, work: Path, *, cmdline: str = KERNEL_CMDLINE,
              xorriso_extra: Sequence[str] = (), arch: Arch = Arch.AMD64) -> None:
    """grub-mkrescue: a hybrid image that boots under BIOS and UEFI, as a CD or as a disk (a foreign
    architecture's: UEFI only, its GRUB from grub_efi_dir, its firmware's console on the serial port).
    `xorriso_extra` goes to xorriso (the appliance appends its state partition that way)."""
    isoroot = work / "isoroot"
    if isoroot.exists():
        shutil.rmtree(isoroot)
    (isoroot / "boot/grub").mkdir(parents=True)
    shutil.copy2(kernel, isoroot / "boot/vmlinuz")
    shutil.copy2(initrd, isoroot / "boot/initrd.img")
    grub_cfg = GRUB_CFG.format(cmdline=cmdline, verbose=VERBOSE_KERNEL)
    platform_dir: list[str | Path] = []
    if is_foreign(arch):
        platform_dir = ["-d", grub_efi_dir(cache_dir(), arch)]
        grub_cfg = "\n".join(line for line in grub_cfg.split("\n") if not line.startswith(("serial", "terminal_")))
    (isoroot / "boot/grub/grub.cfg").write_text(grub_cfg)
    tmp = dest.with_name(dest.name + ".tmp")
    run(["grub-mkrescue", *platform_dir, "-o", tmp, isoroot, "--", "-volid", "EXOSPHERE", *xorriso_extra],
        capture=True)
    tmp.rename(dest)
    shutil.rmtree(isoroot)


def image_key(root: Path, base: Path, manifest_json: str, layers: Sequence[Layer], *, arch: Arch, init: str) -> str:
    """The cache key of an image (cache/image-<key>/): everything its layer is made of, by content.
    Where the repository or a layer's files are does not matter; what they hold, and where in the
    image each goes, does."""
    from_source = FROM_SOURCE.get(arch, {})
    return _key(base.name, manifest_json, *WHEELS, *(f"{r} from source" for r in from_source),
                *([root / "qemu" / "cross.py"] if from_source else []),
                root / "exo_init", root / "corecaps", root / "crush", root / "qemu" / "build.py",
                root / DBUS_POLICY, *(root / "qemu" / f for f in ("stage1.py", "stage1-init", "kmods.py")),
                *(f"{layer.name}:{dst}" for layer in layers for _, dst in layer.files),
                *(src for layer in layers for src, _ in layer.files), init)


@contextlib.contextmanager
def build_lock(cache: Path) -> Iterator[None]:
    """Held while building into `cache`: concurrent builds wait for each other (two mmdebstraps
    into one cache entry would destroy each other's tree). The lock is the kernel's (flock): a
    builder that dies releases it."""
    with open(cache / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another build to finish (lock {cache / '.lock'})")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(layers: Sequence[Layer] = (), iso: bool = True, disk_root: bool = False, init: str = "exo_init",
          arch: Arch = Arch.AMD64) -> Image:
    """Build (or find in the cache) the image; `init="systemd"`: the systemd variant (see the module
    docstring). Concurrent builds wait for each other (build_lock)."""
    if init not in ("exo_init", "systemd") or (init == "systemd" and (iso or disk_root or is_foreign(arch))):
        raise StepFailed(f"no such image: init {init!r}, iso {iso}, disk_root {disk_root}, arch {arch}")
    cache = cache_dir()
    with build_lock(cache):
        return _build(cache, layers, iso, disk_root, init=init, arch=arch)


def _build(cache: Path, layers: Sequence[Layer], iso: bool, disk_root: bool, *, init: str, arch: Arch) -> Image:
    started = time.monotonic()
    systemd = init == "systemd"
    plat: Platform = platform(arch)
    if disk_root and is_foreign(arch):
        raise StepFailed(f"the disk-root variant is built for {Arch.AMD64} only (its stage 1 is the host's busybox "
                         f"layout), not {arch}")
    cmdline = SYSTEMD_CMDLINE if systemd else kernel_cmdline(arch)
    with step(f"build Exosphere dev image ({arch}, {plat.machine})" + (" (systemd variant)" if systemd else "")):
        base = kernel_base = build_base(cache, arch)
        if systemd:
            base = build_base(cache, arch, SYSTEMD_PACKAGES)
            kvers = {(b / "kver").read_text().strip() for b in (kernel_base, base)}
            if len(kvers) != 1:
                raise StepFailed(f"the systemd base has another kernel than the base ({', '.join(sorted(kvers))}): "
                                 f"remove {base} to rebuild it from the same packages")
        with step("render manifest (nix-instantiate)"):
            manifest_json = render_manifest([p for layer in layers for p in layer.nix_extra])
        key = image_key(repo_root(), base, manifest_json, layers, arch=arch, init=init)
        name = ("+".join(["exosphere" + ("-systemd" if systemd else ""), *(layer.name for layer in layers)])
                + ("" if arch is Arch.AMD64 else f"-{arch}"))
        out = cache / f"image-{key}"
        initrd = out / "initrd.img"
        iso_path = out / f"{name}.iso"
        if not (initrd.exists() and (out / "layer.cpio").exists()):
            work = out / "work"
            if work.exists():
                shutil.rmtree(work)
            with step(f"layer {name}"):
                stage_layer(work / "layer", manifest_json, layers, arch)
                if systemd:
                    stage_systemd(work / "layer", manifest_json)
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
            with step("hybrid ISO (grub-mkrescue, " + ("UEFI)" if is_foreign(arch) else "BIOS + UEFI)")):
                build_iso(base / "vmlinuz", initrd, iso_path, out, cmdline=cmdline, arch=arch)
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
    image = Image(kernel=kernel_base / "vmlinuz", initrd=initrd, iso=iso_path if iso else None,
                  manifest=out / "manifest.json", cmdline=cmdline, arch=arch,
                  stage1=stage1 if disk_root else None, root_disk=root_disk if disk_root else None)
    sizes = {"kernel": image.kernel.stat().st_size, "base": (base / "base.cpio").stat().st_size,
             "initrd": initrd.stat().st_size}
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
    p.add_argument("--systemd", action="store_true", help="the systemd variant (same base + systemd-sysv, "
                   "the capsules as systemd units); implies --no-iso")
    p.add_argument("--arch", type=Arch, choices=list(Arch), default=Arch.AMD64,
                   help="the image's architecture (arm64: an extract-only bootstrap configured by the builder)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        die("building the image needs root (mmdebstrap, device nodes, file ownership)",
            hint="run it as root, or through sudo")
    try:
        build(iso=not (args.no_iso or args.systemd), disk_root=args.disk_root,
              init="systemd" if args.systemd else "exo_init", arch=args.arch)
    except StepFailed as e:
        die(str(e))


if __name__ == "__main__":
    main()
