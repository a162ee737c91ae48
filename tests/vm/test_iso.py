"""The hybrid ISO a person boots: BIOS and UEFI, as a CD and as a disk.

These boot the product image (no test layer, so no agent): the serial console is the only
channel, and the checks are what it shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qemu.build import Image
from qemu.vm import OVMF_CODE, VMConfig
from tests.machine import Machine, boot_times

ISO_BOOT_TIMEOUT = 400.0


@pytest.mark.parametrize(("firmware", "medium"), [("bios", "cdrom"), ("uefi", "disk")])
def test_iso_boots_to_all_capsules_ready(product_image: Image, tmp_path: Path, firmware: str, medium: str) -> None:
    assert product_image.iso is not None
    if firmware == "uefi" and not OVMF_CODE.exists():
        pytest.fail(f"UEFI firmware {OVMF_CODE} missing: qemu/setup-host installs the ovmf package")
    cfg = VMConfig(cdrom=product_image.iso if medium == "cdrom" else None,
                   disk=product_image.iso if medium == "disk" else None,
                   uefi=firmware == "uefi", probe_kernel=product_image.kernel)
    m = Machine(f"iso-{firmware}-{medium}", cfg, tmp_path)
    with m.running():
        line = m.wait_for_console_text(r"boot complete: (.*)\n", 2 * ISO_BOOT_TIMEOUT).group(1)
        assert line.startswith("all capsules ready"), line
        times = boot_times(m.console)
        print(f"\nISO {firmware}/{medium}: all capsules ready {times['since_kernel']:.2f} s after kernel start")
        assert "Traceback" not in m.console and "Kernel panic" not in m.console
        m.send_powerdown()
        assert m.wait_for_exit(90) == 0
        assert "exo_init: powering off" in m.console
