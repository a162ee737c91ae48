"""Device discovery without udev: coldplug modaliases and finding the state disk by its label."""

from __future__ import annotations

import subprocess
from pathlib import Path

from exo_init.pid1.statedisk import ext_label, find_by_label
from exo_init.system.coldplug import modaliases


def test_modaliases_walks_sysfs(tmp_path: Path) -> None:
    for rel, alias in (("pci0000:00/0000:00:1f.2", "pci:v00008086d00002922sv"), ("platform/i8042", "platform:i8042"),
                       ("pci0000:00/0000:00:02.0", "pci:v00008086d00002922sv")):
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "modalias").write_text(alias + "\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "modalias").write_text("\n")
    assert modaliases(tmp_path) == ["pci:v00008086d00002922sv", "platform:i8042"]


def test_find_by_label_reads_real_ext4_superblocks(tmp_path: Path) -> None:
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    sysfs.mkdir()
    dev.mkdir()
    for name, label in (("sda1", None), ("sda2", "other"), ("sda3", "exo-state")):
        (sysfs / name).mkdir()
        img = dev / name
        with open(img, "wb") as fh:
            fh.truncate(4 << 20)
        if label:
            subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, str(img)], check=True)
    assert ext_label((dev / "sda1").read_bytes()[:2048]) is None
    assert find_by_label("exo-state", sysfs, dev) == str(dev / "sda3")
    assert find_by_label("missing", sysfs, dev) is None
