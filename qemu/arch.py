"""The architectures the dev image is built for, and what differs between them.

amd64 is the host's own architecture: mmdebstrap runs the packages' maintainer scripts. arm64 is
foreign here (no binfmt_misc, so no qemu-user): its base is an extract-only bootstrap that the
builder configures itself (qemu/foreign.py), and it boots under qemu-system-aarch64 (TCG).
"""

from __future__ import annotations

import enum
import platform as _platform
from dataclasses import dataclass
from pathlib import Path


class Arch(enum.StrEnum):
    AMD64 = "amd64"
    ARM64 = "arm64"


@dataclass(frozen=True)
class Platform:
    arch: Arch
    machine: str                   # `uname -m` in the guest; the manylinux wheel tag's suffix
    triplet: str                   # Debian's multiarch library directory (usr/lib/<triplet>)
    elf_machine: int               # e_machine of its ELF files (EM_X86_64, EM_AARCH64)
    kernel_package: str
    modules: tuple[str, ...]       # kernel modules shipped for this platform's virtual hardware
    serial: str                    # the serial console's device (kernel console=)
    qemu: str
    qemu_machine: str
    grub_efi: str                  # GRUB's EFI platform (usr/lib/grub/<grub_efi>)
    efi_firmware: Path             # UEFI firmware for QEMU (qemu/setup-host installs it)


# Drivers for the disks, filesystems, inputs and NICs of every platform's virtual machine.
_COMMON_MODULES = (
    "virtio_pci", "virtio_scsi", "virtio_input", "virtio_gpu", "virtio_balloon", "crc32c_generic",
    "ext4", "vfat", "isofs", "squashfs", "overlay", "loop", "sr_mod", "sd_mod", "veth", "af_packet", "evdev",
    "ptp", "9pnet_virtio", "9p",
)

PLATFORMS = {
    Arch.AMD64: Platform(
        arch=Arch.AMD64, machine="x86_64", triplet="x86_64-linux-gnu", elf_machine=62,
        kernel_package="linux-image-amd64",
        # QEMU's std VGA (bochs), VirtualBox's VMSVGA (vmwgfx) and cirrus; its SATA and e1000 NICs;
        # ext4 asks for crc32c_intel when it mounts a filesystem with metadata checksums.
        modules=(*_COMMON_MODULES, "bochs", "vmwgfx", "cirrus", "drm_vram_helper", "crc32c_intel", "ahci",
                 "ata_piix", "e1000", "e1000e", "psmouse"),
        serial="ttyS0", qemu="qemu-system-x86_64", qemu_machine="q35", grub_efi="x86_64-efi",
        efi_firmware=Path("/usr/share/OVMF/OVMF_CODE.fd")),
    Arch.ARM64: Platform(
        arch=Arch.ARM64, machine="aarch64", triplet="aarch64-linux-gnu", elf_machine=183,
        kernel_package="linux-image-arm64",
        # The virt machine's power button is a GPIO key (PL061, built in), not an ACPI button.
        modules=(*_COMMON_MODULES, "gpio_keys"),
        serial="ttyAMA0", qemu="qemu-system-aarch64", qemu_machine="virt", grub_efi="arm64-efi",
        efi_firmware=Path("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd")),
}


def platform(arch: Arch) -> Platform:
    return PLATFORMS[arch]


def host_arch() -> Arch | None:
    """The host's architecture, if it is one the image is built for."""
    machine = _platform.machine()
    return next((a for a, p in PLATFORMS.items() if p.machine == machine), None)


def is_foreign(arch: Arch) -> bool:
    """True if the host cannot run `arch`'s programs (its maintainer scripts, its guests under KVM)."""
    return host_arch() is not arch
