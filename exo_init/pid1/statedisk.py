"""Where exo_init keeps state (generations, the event log), and the persistent state disk.

PID 1 with `exo.state=/dev/vda`: the disk is mounted at /var/lib/exosphere (the modules for it are
loaded first; a blank disk is formatted ext4; a disk holding something that is not ext2/3/4 is
left alone). PID 1 without it: /var/lib/exosphere when the root filesystem is persistent, else
RUNTIME/state (volatile). Not PID 1: --state-dir, or RUNTIME/state.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from exo_init.pid1 import syscalls
from exo_init.pid1.config import Config
from exo_init.pid1.log import log

PERSISTENT_STATE = Path("/var/lib/exosphere")
# Disk drivers of QEMU (virtio) and VirtualBox (AHCI SATA, PIIX IDE), and the filesystem.
STATE_MODULES = ("virtio_pci", "virtio_blk", "ahci", "ata_piix", "sd_mod", "ext4")
DEVICE_WAIT = 15.0
EXT_MAGIC_OFFSET = 0x438
BLANK_CHECK = 1 << 20
VOLATILE_ROOTS = frozenset({"rootfs", "tmpfs", "ramfs"})


def has_ext_filesystem(head: bytes) -> bool:
    return head[EXT_MAGIC_OFFSET:EXT_MAGIC_OFFSET + 2] == b"\x53\xef"


def root_is_persistent(mounts: str) -> bool:
    fstype = "rootfs"
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "/":
            fstype = fields[2]  # the last mount on / is the visible one
    return fstype not in VOLATILE_ROOTS


EXT_LABEL_OFFSET = 0x478  # s_volume_name: superblock at 1024 + 0x78, 16 bytes


def ext_label(head: bytes) -> str | None:
    if not has_ext_filesystem(head):
        return None
    return head[EXT_LABEL_OFFSET:EXT_LABEL_OFFSET + 16].split(b"\0", 1)[0].decode(errors="replace")


def find_by_label(label: str, sysfs: Path = Path("/sys/class/block"), dev: Path = Path("/dev")) -> str | None:
    """The block device (partition or disk) whose ext filesystem is labelled `label` (no udev, so no
    /dev/disk/by-label: read each device's superblock)."""
    for entry in sorted(sysfs.iterdir()) if sysfs.is_dir() else []:
        try:
            with open(dev / entry.name, "rb") as f:
                head = f.read(2048)
        except OSError:
            continue
        if ext_label(head) == label:
            return str(dev / entry.name)
    return None


def resolve_device(spec: str, timeout: float = DEVICE_WAIT) -> str:
    """`/dev/vda` or `LABEL=exo-state` -> a device path, waiting for the driver to probe it."""
    deadline = time.monotonic() + timeout
    while True:
        found = find_by_label(spec[6:]) if spec.startswith("LABEL=") else (spec if os.path.exists(spec) else None)
        if found is not None:
            return found
        if time.monotonic() > deadline:  # no udev: devtmpfs creates the node when the driver probes
            raise OSError(f"state disk {spec} did not appear within {timeout:g} s")
        time.sleep(0.05)


def mount_state_disk(device: str, target: Path) -> None:
    """Mount `device` (ext4, formatted if blank) at `target`; OSError with one line if impossible."""
    import subprocess  # noqa: PLC0415 (only with a state disk: PID 1 does not carry it otherwise)

    started = time.monotonic()
    try:
        subprocess.run(["modprobe", "-a", *STATE_MODULES], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30, check=False)
    except subprocess.SubprocessError as e:
        raise OSError(f"modprobe: {e}") from None
    device = resolve_device(device)
    with open(device, "rb") as f:
        head = f.read(BLANK_CHECK)
    formatted = False
    if not has_ext_filesystem(head):
        formatted = True
        if head.strip(b"\0"):
            raise OSError(f"state disk {device} holds data that is not an ext filesystem; not formatting it")
        try:
            proc = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "exo-state", device], capture_output=True,
                                  timeout=120, check=False)
        except subprocess.SubprocessError as e:
            raise OSError(f"mkfs.ext4 {device}: {e}") from None
        if proc.returncode != 0:
            raise OSError(f"mkfs.ext4 {device} failed: {proc.stderr.decode(errors='replace').strip()}")
    target.mkdir(parents=True, exist_ok=True)
    try:
        syscalls.mount(device, str(target), "ext4", syscalls.MS_NOSUID | syscalls.MS_NODEV)
    except OSError as e:
        raise OSError(f"mount {device} on {target}: {e.strerror or e}") from None
    log.info("state disk %s mounted on %s%s in %.2f s", device, target, " (formatted ext4)" if formatted else "",
             time.monotonic() - started)


def prepare_state_dir(config: Config) -> tuple[Path, list[str]]:
    """The state directory to use, and warnings to log (never raises: the fallback is volatile)."""
    volatile = config.runtime_dir / "state"
    if config.state_dir is not None:
        return config.state_dir, []
    if not config.pid1:
        return volatile, []
    warnings: list[str] = []
    if config.state_device:
        try:
            mount_state_disk(config.state_device, PERSISTENT_STATE)
            return PERSISTENT_STATE, []
        except OSError as e:
            warnings.append(f"{e}; state is volatile (in {volatile})")
            return volatile, warnings
    try:
        persistent = root_is_persistent(Path("/proc/self/mounts").read_text())
    except OSError:
        persistent = False
    if persistent and os.access(PERSISTENT_STATE.parent, os.W_OK):
        return PERSISTENT_STATE, []
    return volatile, []
