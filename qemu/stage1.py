"""The disk-root variant of the dev image: a small stage 1 that mounts the root filesystem and
switch_roots to exo_init.

The default dev image has no stage 1: its initramfs is the whole root filesystem, and the kernel
execs exo_init from it. This variant boots the same tree from a disk instead, to compare the two
under TCG (tests/bench/boot.py; the figures are in the README):

  root.ext4    the image's tree (the base and layer cpio segments, unpacked), ext4 labelled exo-root
  stage1.img   an initramfs of busybox, the disk drivers (virtio_pci, virtio_blk, ext4 and their
               dependencies, in load order) and qemu/stage1-init as /init
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from qemu.kmods import load_order
from qemu.util import StepFailed, log, repo_root, run, write_cpio

ROOT_LABEL = "exo-root"
STAGE1_MODULES = ("virtio_pci", "virtio_blk", "ext4", "crc32c_generic")
# The busybox applets the stage-1 script calls (qemu/stage1-init).
APPLETS = ("sh", "mount", "umount", "insmod", "findfs", "switch_root", "usleep", "cat", "wc")
# busybox's loader and libraries (readelf -d: libresolv, libc): (in the image, in the stage 1).
LIBS = (("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2"),
        ("usr/lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/libc.so.6"),
        ("usr/lib/x86_64-linux-gnu/libresolv.so.2", "lib/x86_64-linux-gnu/libresolv.so.2"))
FREE_SPACE = 256 << 20  # room on the root filesystem for logs, generations and capsule state


def unpack(parts: Sequence[Path], tree: Path) -> None:
    """Extract cpio segments into `tree`, later ones winning (as the kernel unpacks them)."""
    tree.mkdir(parents=True)
    for part in parts:
        run(["cpio", "-idmu", "--quiet", "--no-absolute-filenames", "-F", part.resolve()], cwd=tree)


def tree_bytes(tree: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in (*dirnames, *filenames):
            st = os.lstat(os.path.join(dirpath, name))
            total += (st.st_size + 4095) // 4096 * 4096 + 256  # blocks + an inode
    return total


def build_root_disk(tree: Path, dest: Path) -> None:
    """An ext4 filesystem image (sparse) holding `tree`, ownership and modes as in the tree."""
    size_mib = (tree_bytes(tree) * 5 // 4 + FREE_SPACE) >> 20
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    run(["mke2fs", "-q", "-t", "ext4", "-L", ROOT_LABEL, "-d", tree, "-E", "root_owner=0:0", tmp, f"{size_mib}M"])
    tmp.rename(dest)


def build_stage1_initrd(tree: Path, kver: str, dest: Path, work: Path) -> None:
    """The stage-1 initramfs, made from the image's own busybox, libc and kernel modules."""
    staging = work / "stage1"
    if staging.exists():
        shutil.rmtree(staging)
    for d in ("bin", "dev", "proc", "sys", "newroot", "lib/modules"):
        (staging / d).mkdir(parents=True)
    busybox = tree / "usr/bin/busybox"
    if not busybox.exists():
        raise StepFailed("no /usr/bin/busybox in the image (it comes with udhcpc in PACKAGES)")
    shutil.copy2(busybox, staging / "bin/busybox")
    for applet in APPLETS:
        (staging / "bin" / applet).symlink_to("busybox")
    for src, lib in LIBS:
        target = staging / lib
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tree / src, target)  # (relative or real files in the image: never the host's)
    moddir = tree / "usr/lib/modules" / kver
    order = load_order(moddir, STAGE1_MODULES)
    if not order:
        raise StepFailed(f"none of {', '.join(STAGE1_MODULES)} is a module of kernel {kver}")
    for rel in order:
        shutil.copy2(moddir / rel, staging / "lib/modules" / Path(rel).name)
    (staging / "lib/modules/load-order").write_text("".join(Path(rel).name + "\n" for rel in order))
    os.mknod(staging / "dev/console", 0o600 | 0o020000, os.makedev(5, 1))
    shutil.copy2(repo_root() / "qemu" / "stage1-init", staging / "init")
    (staging / "init").chmod(0o755)
    log(f"stage 1: busybox, {len(order)} modules ({', '.join(Path(r).name for r in order)})")
    write_cpio(staging, dest)
    shutil.rmtree(staging)
