"""The VirtualBox appliance: archive layout, descriptor, digests, the VMDK, and its disk booting.

VirtualBox cannot run on these machines: the disk inside the OVA is booted with QEMU instead, as a
SATA (AHCI) disk like VirtualBox's default controller.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from qemu.vm import VMConfig
from tests.machine import Machine
from tests.vm.conftest import BOOT_TIMEOUT, TEST_LAYER
from virtualbox.build import Appliance, build_ova, sha256_file
from virtualbox.ovfcheck import check


@pytest.fixture(scope="module")
def appliance() -> Appliance:
    return build_ova(layers=[TEST_LAYER])


def test_ova_is_ustar_with_descriptor_first(appliance: Appliance) -> None:
    with tarfile.open(appliance.ova) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == ["exosphere.ovf", "exosphere.mf", "exosphere-disk1.vmdk"]
        assert all(m.isfile() for m in members)
    with open(appliance.ova, "rb") as fh:
        assert fh.read(512)[257:263] == b"ustar\x00", "OVF requires the POSIX ustar format"


def test_descriptor_is_valid_ovf(appliance: Appliance) -> None:
    with tarfile.open(appliance.ova) as tar:
        ovf = tar.extractfile("exosphere.ovf").read()  # type: ignore[union-attr]
    assert check(ovf) == []
    text = ovf.decode()
    for needle in ("<vbox:OSType ovf:required=\"false\">Linux_64</vbox:OSType>", ">AHCI<", ">E1000<", ">NAT<",
                   "controller=\"VMSVGA\"", "<rasd:VirtualQuantity>1024</rasd:VirtualQuantity>",
                   "<ovf:Name>exosphere</ovf:Name>", "<ovf:Vendor>Exosphere</ovf:Vendor>"):
        assert needle in text, needle


@pytest.mark.parametrize(("breakage", "expect"), [
    (("<ovf:Info>Virtual disks</ovf:Info>", ""), "DiskSection: the first child must be ovf:Info"),
    (('ovf:fileRef="file1"', 'ovf:fileRef="file9"'), "names no File in References"),
    (("<rasd:Caption>disk1</rasd:Caption>", ""), None),  # optional: still valid
    (("ovf:/disk/vmdisk1", "ovf:/disk/nope"), "names no Disk/File"),
    (("<rasd:ResourceType>17</rasd:ResourceType>", "<rasd:ResourceType>99</rasd:ResourceType>"),
     "is not a CIM resource type"),
    (('<vbox:OSType ovf:required="false">', "<vbox:OSType>"), "without ovf:required"),
])
def test_checker_catches_broken_descriptors(appliance: Appliance, breakage: tuple[str, str],
                                            expect: str | None) -> None:
    text = appliance.ovf.read_text()
    assert breakage[0] in text
    errors = check(text.replace(breakage[0], breakage[1], 1).encode())
    if expect is None:
        assert errors == []
    else:
        assert any(expect in e for e in errors), errors


def test_checker_sees_rasd_order(appliance: Appliance) -> None:
    text = appliance.ovf.read_text()
    swapped = text.replace("<rasd:Address>0</rasd:Address>\n", "", 1).replace(
        "<rasd:ResourceSubType>AHCI</rasd:ResourceSubType>",
        "<rasd:ResourceSubType>AHCI</rasd:ResourceSubType><rasd:Address>0</rasd:Address>", 1)
    assert any("out of schema order" in e for e in check(swapped.encode()))


def v2v_print_source(ova_dir: Path) -> subprocess.CompletedProcess[str]:
    """Debian's virt-v2v reading the appliance like an importer (no conversion, no libguestfs VM)."""
    return subprocess.run(["virt-v2v", "-i", "ova", str(ova_dir), "--print-source"], capture_output=True,
                          text=True, timeout=300, check=False, env={**os.environ, "LANG": "C"})


def unpack_with_descriptor(appliance: Appliance, dest: Path, ovf: bytes) -> Path:
    """The appliance as an OVA directory (which virt-v2v also takes) with `ovf` as its descriptor
    and a manifest that matches it."""
    dest.mkdir()
    (dest / "exosphere.ovf").write_bytes(ovf)
    try:  # (virt-v2v refuses a symbolic link: "references a file outside the archive")
        os.link(appliance.vmdk, dest / "exosphere-disk1.vmdk")
    except OSError:
        shutil.copyfile(appliance.vmdk, dest / "exosphere-disk1.vmdk")
    (dest / "exosphere.mf").write_text(f"SHA256(exosphere.ovf)= {hashlib.sha256(ovf).hexdigest()}\n"
                                       f"SHA256(exosphere-disk1.vmdk)= {sha256_file(appliance.vmdk)}\n")
    return dest


def test_virt_v2v_reads_the_appliance(appliance: Appliance, tmp_path: Path) -> None:
    ovf = appliance.ovf.read_bytes()
    # Renamed, so that the name virt-v2v prints can only come from the descriptor (its fallback is
    # the file name).
    out = v2v_print_source(unpack_with_descriptor(appliance, tmp_path / "renamed", ovf))
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stdout + out.stderr, out.stdout + out.stderr
    fields = dict(re.findall(r"^\s*([a-zA-Z ]+?): (.*)$", out.stdout, re.MULTILINE))
    assert fields["source name"] == "exosphere", out.stdout
    assert fields["memory"] == f"{1024 << 20} (bytes)" and fields["nr vCPUs"] == "2", out.stdout
    assert fields["firmware"] == "bios", out.stdout
    assert re.search(r"^\s*0 \[sata\]$", out.stdout, re.MULTILINE), out.stdout
    assert re.search(r'"NAT" \[e1000\]', out.stdout), out.stdout


def test_virt_v2v_warns_without_the_name(appliance: Appliance, tmp_path: Path) -> None:
    """The importer's complaint this descriptor fixed (issue 21), so the test above can fail."""
    ovf = appliance.ovf.read_text()
    assert "<ovf:Name>exosphere</ovf:Name>" in ovf
    broken = ovf.replace("<ovf:Name>exosphere</ovf:Name>", "", 1).encode()
    assert any("no ovf:Name" in e for e in check(broken))
    out = v2v_print_source(unpack_with_descriptor(appliance, tmp_path / "renamed", broken))
    assert "could not parse ovf:Name" in out.stderr + out.stdout, out.stderr
    assert "source name: renamed" in out.stdout, out.stdout


def test_manifest_digests_match(appliance: Appliance, tmp_path: Path) -> None:
    with tarfile.open(appliance.ova) as tar:
        tar.extractall(tmp_path, filter="data")
    lines = (tmp_path / "exosphere.mf").read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        name, digest = line.removeprefix("SHA256(").split(")= ")
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest, name


def test_vmdk_converts_back_to_the_same_disk(appliance: Appliance, tmp_path: Path) -> None:
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-f", "vmdk", "-O", "raw", str(appliance.vmdk), str(back)], check=True)
    assert back.stat().st_size == appliance.raw_disk.stat().st_size
    assert sha256_file(back) == sha256_file(appliance.raw_disk)


@pytest.mark.parametrize("uefi", [False, True], ids=["bios", "uefi"])
def test_disk_boots_as_sata_disk_with_state_partition(appliance: Appliance, tmp_path: Path, uefi: bool) -> None:
    disk = tmp_path / "disk.raw"
    subprocess.run(["cp", "--sparse=always", str(appliance.raw_disk), str(disk)], check=True)
    m = Machine("ova-" + ("uefi" if uefi else "bios"), VMConfig(disk=disk, uefi=uefi), tmp_path / "vm")
    with m.running():
        line = m.wait_for_console_text(r"boot complete: (.*)\n", BOOT_TIMEOUT).group(1)
        assert line.startswith("all capsules ready"), line
        mounts = m.succeed("cat /proc/mounts")
        assert " /var/lib/exosphere ext4 " in mounts, mounts
        m.send_powerdown()
        assert m.wait_for_exit(90) == 0


def test_switched_generation_survives_reboot_of_the_disk(appliance: Appliance, tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    subprocess.run(["cp", "--sparse=always", str(appliance.raw_disk), str(disk)], check=True)
    add_marker = ("import json; m = json.load(open('/etc/exosphere/manifest.json')); "
                  "m['capsules']['marker'] = {'argv': ['/bin/sleep', '1000']}; "
                  "json.dump(m, open('/tmp/next.json', 'w'))")
    first = Machine("ova-boot1", VMConfig(disk=disk), tmp_path / "vm1")
    with first.running():
        first.wait_for_console_text(r"boot complete: .*\n", BOOT_TIMEOUT)
        first.succeed(f'python3 -c "{add_marker}"')
        first.succeed("exoctl switch /tmp/next.json --no-try")
        first.wait_for_capsule("marker", "ready", 60)
        before = json.loads(first.succeed("exoctl --json generations"))
        first.send_powerdown()
        assert first.wait_for_exit(90) == 0
    second = Machine("ova-boot2", VMConfig(disk=disk), tmp_path / "vm2")
    with second.running():
        second.wait_for_console_text(r"boot complete: .*\n", BOOT_TIMEOUT)
        after = json.loads(second.succeed("exoctl --json generations"))
        assert after["current"] == before["current"] == after["booted"], (before, after)
        assert len(after["generations"]) == len(before["generations"]) >= 2
        second.wait_for_capsule("marker", "ready", 60)
