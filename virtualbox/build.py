"""Build the VirtualBox appliance: exosphere.ova = OVF 1.0 descriptor, manifest, streamOptimized VMDK.

The disk is the hybrid boot image (BIOS + UEFI, the same kernel and initramfs as the ISO) with a
third partition appended: an ext4 state partition labelled `exo-state` for generations and logs.
Nothing here needs loop devices or mounts: xorriso writes the partition table and appends the
partition image, which `mkfs.ext4` made in a plain file.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from exo_init import __version__
from qemu.build import KERNEL_CMDLINE, Image, Layer, build, build_iso
from qemu.util import StepFailed, cache_dir, die, log, run, sha256_of, step

STATE_LABEL = "exo-state"
# The screen is the console a VirtualBox user sees (the last console= is /dev/console); the serial
# line still gets every exo_init status line (exo_init writes to all active consoles).
OVA_CMDLINE = KERNEL_CMDLINE.replace("console=tty0 console=ttyS0,115200", "console=ttyS0,115200 console=tty0") \
    + f" exo.state=LABEL={STATE_LABEL}"
NAME = "exosphere"

NS = {
    "ovf": "http://schemas.dmtf.org/ovf/envelope/1",
    "rasd": "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData",
    "vssd": "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData",
    "vbox": "http://www.virtualbox.org/ovf/machine",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)


@dataclass(frozen=True)
class Appliance:
    ova: Path
    raw_disk: Path
    vmdk: Path
    ovf: Path


@dataclass(frozen=True)
class Hardware:
    cpus: int = 2
    memory_mb: int = 1024
    state_mb: int = 512


def _q(prefix: str, tag: str) -> str:
    return f"{{{NS[prefix]}}}{tag}"


def _sub(parent: ET.Element, prefix: str, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, _q(prefix, tag), {(_q("ovf", k[4:]) if k.startswith("ovf_") else k): v
                                                 for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _item(hw: ET.Element, instance: int, resource_type: int, caption: str, **rasd: str) -> ET.Element:
    """A RASD item; its child elements must be in alphabetical order (the CIM schema's sequence)."""
    item = _sub(hw, "ovf", "Item")
    fields = {"Caption": caption, "Description": caption, "ElementName": caption,
              "InstanceID": str(instance), "ResourceType": str(resource_type), **rasd}
    for key in sorted(fields):
        _sub(item, "rasd", key, fields[key])
    return item


def ovf_descriptor(vmdk_name: str, vmdk_size: int, capacity: int, hw: Hardware) -> bytes:
    env = ET.Element(_q("ovf", "Envelope"), {_q("ovf", "version"): "1.0", "xml:lang": "en-US"})
    refs = _sub(env, "ovf", "References")
    _sub(refs, "ovf", "File", ovf_href=vmdk_name, ovf_id="file1", ovf_size=str(vmdk_size))
    disks = _sub(env, "ovf", "DiskSection")
    _sub(disks, "ovf", "Info", "Virtual disks")
    _sub(disks, "ovf", "Disk", ovf_capacity=str(capacity), ovf_diskId="vmdisk1", ovf_fileRef="file1",
         ovf_format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized")
    nets = _sub(env, "ovf", "NetworkSection")
    _sub(nets, "ovf", "Info", "Logical networks")
    net = _sub(nets, "ovf", "Network", ovf_name="NAT")
    _sub(net, "ovf", "Description", "Network for NAT")
    vs = _sub(env, "ovf", "VirtualSystem", ovf_id=NAME)
    _sub(vs, "ovf", "Info", "Exosphere OS: a Linux system whose PID 1 is exo_init")
    # The machine's name: VirtualBox falls back to ovf:id without it, other importers (virt-v2v,
    # VMware's ovftool) read only this element.
    _sub(vs, "ovf", "Name", NAME)
    prod = _sub(vs, "ovf", "ProductSection")
    _sub(prod, "ovf", "Info", "Product")
    for key, value in (("Product", "Exosphere OS"), ("Vendor", "Exosphere"), ("Version", __version__),
                       ("FullVersion", __version__)):  # the schema's order
        _sub(prod, "ovf", key, value)
    os_sec = _sub(vs, "ovf", "OperatingSystemSection", ovf_id="101")  # 101 = Other Linux (64-bit)
    _sub(os_sec, "ovf", "Info", "The guest operating system")
    _sub(os_sec, "ovf", "Description", "Linux 2.6 / 3.x / 4.x / 5.x (64-bit)")
    _sub(os_sec, "vbox", "OSType", "Linux_64", ovf_required="false")
    hw_sec = _sub(vs, "ovf", "VirtualHardwareSection")
    _sub(hw_sec, "ovf", "Info", "Virtual hardware requirements")
    system = _sub(hw_sec, "ovf", "System")
    for key, value in (("ElementName", "Virtual Hardware Family"), ("InstanceID", "0"),
                       ("VirtualSystemIdentifier", NAME), ("VirtualSystemType", "virtualbox-2.2")):
        _sub(system, "vssd", key, value)
    _item(hw_sec, 1, 3, f"{hw.cpus} virtual CPU", VirtualQuantity=str(hw.cpus),
          AllocationUnits="hertz * 10^6")
    _item(hw_sec, 2, 4, f"{hw.memory_mb} MB of memory", VirtualQuantity=str(hw.memory_mb),
          AllocationUnits="byte * 2^20")
    _item(hw_sec, 3, 20, "sataController0", Address="0", ResourceSubType="AHCI")
    _item(hw_sec, 4, 17, "disk1", AddressOnParent="0", HostResource="ovf:/disk/vmdisk1", Parent="3")
    _item(hw_sec, 5, 10, "Ethernet adapter on NAT", AutomaticAllocation="true", Connection="NAT",
          ResourceSubType="E1000")
    # VirtualBox reads the graphics controller from its own section; VMSVGA is what the Linux
    # vmwgfx driver (shipped in the image) drives.
    machine = _sub(vs, "vbox", "Machine", ovf_required="false", version="1.16-linux", name=NAME)
    _sub(machine, "ovf", "Info", "VirtualBox-specific settings")
    hardware = _sub(machine, "vbox", "Hardware")
    _sub(hardware, "vbox", "Display", controller="VMSVGA", VRAMSize="32")
    _sub(hardware, "vbox", "Firmware", type="BIOS")
    ET.indent(env)
    body: bytes = ET.tostring(env, encoding="utf-8")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def build_disk(image: Image, dest: Path, work: Path, hw: Hardware) -> None:
    """The bootable disk: hybrid ISO layout (BIOS + UEFI) plus an appended ext4 state partition."""
    state = work / "state.ext4"
    with open(state, "wb") as fh:
        fh.truncate(hw.state_mb << 20)
    run(["mkfs.ext4", "-q", "-F", "-L", STATE_LABEL, "-E", "root_owner=0:0", state])
    build_iso(image.kernel, image.initrd, dest, work, cmdline=OVA_CMDLINE,
              xorriso_extra=("-append_partition", "3", "0x83", str(state)))
    state.unlink()


def build_ova(hw: Hardware = Hardware(), layers: Sequence[Layer] = ()) -> Appliance:
    """The appliance (cached by content). `layers` as for the dev image: the tests add theirs."""
    image = build(layers, iso=False)
    key = sha256_of(image.kernel, image.initrd, OVA_CMDLINE, Path(__file__), repr(hw))
    out = cache_dir() / f"ova-{key}"
    appliance = Appliance(ova=out / f"{NAME}.ova", raw_disk=out / f"{NAME}-disk1.raw",
                          vmdk=out / f"{NAME}-disk1.vmdk", ovf=out / f"{NAME}.ovf")
    if appliance.ova.exists():
        log(f"appliance {key}: cached\n  {appliance.ova}")
        return appliance
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with step("VirtualBox appliance"):
        with step("disk (hybrid BIOS/UEFI boot + ext4 state partition)"):
            build_disk(image, appliance.raw_disk, out, hw)
        with step("streamOptimized VMDK"):
            run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
                 appliance.raw_disk, appliance.vmdk])
        capacity = appliance.raw_disk.stat().st_size
        appliance.ovf.write_bytes(ovf_descriptor(appliance.vmdk.name, appliance.vmdk.stat().st_size, capacity, hw))
        mf = out / f"{NAME}.mf"
        mf.write_text("".join(f"SHA256({p.name})= {sha256_file(p)}\n" for p in (appliance.ovf, appliance.vmdk)))
        tmp = appliance.ova.with_name(appliance.ova.name + ".tmp")
        # OVF 1.0: a ustar archive, descriptor first, then the manifest, then the disks.
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for member in (appliance.ovf, mf, appliance.vmdk):
                info = tar.gettarinfo(str(member), arcname=member.name)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                with open(member, "rb") as fh:
                    tar.addfile(info, fh)
        tmp.rename(appliance.ova)
    log(f"appliance: {appliance.ova} ({appliance.ova.stat().st_size / 1e6:.1f} MB; "
        f"disk {capacity / 1e6:.1f} MB raw)")
    return appliance


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="virtualbox/build", description="Build the Exosphere VirtualBox appliance")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--memory", type=int, default=1024, metavar="MB")
    p.add_argument("--state-size", type=int, default=512, metavar="MB")
    args = p.parse_args(argv)
    try:
        build_ova(Hardware(cpus=args.cpus, memory_mb=args.memory, state_mb=args.state_size))
    except StepFailed as e:
        die(str(e))


if __name__ == "__main__":
    main()
