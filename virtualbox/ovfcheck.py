"""Structural checks of an OVF 1.x descriptor, from the DMTF envelope schema (DSP8023) and the
OVF specification (DSP0243), for use with no network: the schema file itself is not available on
these machines, so its rules that matter for an appliance are written out here.

`check(xml_bytes) -> list[str]`: every problem found, each naming the element; empty when valid.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

OVF = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"

# Sections the envelope schema defines, and where they may appear.
ENVELOPE_SECTIONS = {"DiskSection", "NetworkSection", "DeploymentOptionSection"}
SYSTEM_SECTIONS = {"ProductSection", "OperatingSystemSection", "VirtualHardwareSection", "EulaSection",
                   "AnnotationSection", "StartupSection", "InstallSection"}
# CIM_ResourceAllocationSettingData properties (the schema's xs:sequence, alphabetical).
RASD_PROPERTIES = (
    "Address", "AddressOnParent", "AllocationUnits", "AutomaticAllocation", "AutomaticDeallocation",
    "Caption", "Connection", "ConsumerVisibility", "Description", "ElementName", "HostResource",
    "InstanceID", "Limit", "MappingBehavior", "OtherResourceType", "Parent", "PoolID", "Reservation",
    "ResourceSubType", "ResourceType", "VirtualQuantity", "VirtualQuantityUnits", "Weight",
)
RESOURCE_TYPES = set(range(1, 36))


def q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def local(tag: str) -> tuple[str, str]:
    m = re.match(r"^\{(.*)\}(.*)$", tag)
    return (m.group(1), m.group(2)) if m else ("", tag)


def _section_info_first(el: ET.Element, where: str, errors: list[str]) -> None:
    first = next(iter(el), None)
    if first is None or first.tag != q(OVF, "Info"):
        errors.append(f"{where}: the first child must be ovf:Info")
    elif not (first.text or "").strip():
        errors.append(f"{where}: ovf:Info is empty")


def check(data: bytes) -> list[str]:
    errors: list[str] = []
    try:
        # Descriptors checked here are the project's own (or test variants of them): trusted input.
        root = ET.fromstring(data)  # noqa: S314
    except ET.ParseError as e:
        return [f"not well-formed XML: {e}"]
    if root.tag != q(OVF, "Envelope"):
        return [f"root element is {root.tag}, not ovf:Envelope"]
    version = root.get(q(OVF, "version"))
    if version is not None and not re.match(r"^1\.\d+(\.\d+)?$", version):
        errors.append(f"Envelope: ovf:version {version!r} is not 1.x")
    children = list(root)
    if not children or children[0].tag != q(OVF, "References"):
        errors.append("Envelope: the first child must be ovf:References")

    files: dict[str, str] = {}
    for f in root.findall(f"{{{OVF}}}References/{{{OVF}}}File"):
        fid, href = f.get(q(OVF, "id")), f.get(q(OVF, "href"))
        if not fid or not href:
            errors.append("References/File: ovf:id and ovf:href are required")
            continue
        if fid in files:
            errors.append(f"References/File: duplicate ovf:id {fid!r}")
        files[fid] = href
        size = f.get(q(OVF, "size"))
        if size is not None and not size.isdigit():
            errors.append(f"File {fid}: ovf:size {size!r} is not a byte count")

    # An extension element (another namespace) directly inside an OVF element must be marked
    # ovf:required="false", or a consumer that does not know it has to refuse the package.
    for parent in root.iter():
        if local(parent.tag)[0] != OVF:
            continue
        for child in parent:
            ns, name = local(child.tag)
            if ns not in (OVF, RASD, VSSD) and child.get(q(OVF, "required")) != "false":
                errors.append(f"{local(parent.tag)[1]}: extension element {name} ({ns}) without "
                              'ovf:required="false"')

    seen_system = False
    disks: set[str] = set()
    networks: set[str] = set()
    for el in children[1:]:
        ns, name = local(el.tag)
        if ns != OVF:
            continue  # an extension: checked above
        if name in ("VirtualSystem", "VirtualSystemCollection"):
            seen_system = True
            continue
        if seen_system:
            errors.append(f"Envelope: {name} must come before the VirtualSystem")
        if name not in ENVELOPE_SECTIONS:
            errors.append(f"Envelope: {name} is not an envelope-level section")
            continue
        _section_info_first(el, name, errors)
        if name == "DiskSection":
            for d in el.findall(f"{{{OVF}}}Disk"):
                did = d.get(q(OVF, "diskId"))
                if not did or not d.get(q(OVF, "capacity")) or not d.get(q(OVF, "format")):
                    errors.append("DiskSection/Disk: ovf:diskId, ovf:capacity and ovf:format are required")
                    continue
                disks.add(did)
                ref = d.get(q(OVF, "fileRef"))
                if ref is not None and ref not in files:
                    errors.append(f"Disk {did}: ovf:fileRef {ref!r} names no File in References")
                if not (d.get(q(OVF, "capacity")) or "").isdigit():
                    errors.append(f"Disk {did}: ovf:capacity is not a number")
        if name == "NetworkSection":
            for n in el.findall(f"{{{OVF}}}Network"):
                if not n.get(q(OVF, "name")):
                    errors.append("NetworkSection/Network: ovf:name is required")
                networks.add(n.get(q(OVF, "name")) or "")

    systems = root.findall(f"{{{OVF}}}VirtualSystem")
    if len(systems) + len(root.findall(f"{{{OVF}}}VirtualSystemCollection")) != 1:
        errors.append("Envelope: exactly one VirtualSystem or VirtualSystemCollection is required")
    for vs in systems:
        vid = vs.get(q(OVF, "id"))
        where = f"VirtualSystem {vid}"
        if not vid:
            errors.append("VirtualSystem: ovf:id is required")
        _section_info_first(vs, where, errors)
        name_el = vs.find(f"{{{OVF}}}Name")
        if name_el is None or not (name_el.text or "").strip():
            errors.append(f"{where}: no ovf:Name (importers such as virt-v2v read the machine's name from it)")
        for el in list(vs)[1:]:
            ns, name = local(el.tag)
            if ns == OVF and name not in SYSTEM_SECTIONS and name != "Name":
                errors.append(f"{where}: {name} is not a virtual-system section")
        os_sec = vs.find(f"{{{OVF}}}OperatingSystemSection")
        if os_sec is None:
            errors.append(f"{where}: OperatingSystemSection is required")
        else:
            _section_info_first(os_sec, "OperatingSystemSection", errors)
            if not (os_sec.get(q(OVF, "id")) or "").isdigit():
                errors.append("OperatingSystemSection: ovf:id must be a CIM OS type number")
        hw = vs.find(f"{{{OVF}}}VirtualHardwareSection")
        if hw is None:
            errors.append(f"{where}: VirtualHardwareSection is required")
            continue
        _section_info_first(hw, "VirtualHardwareSection", errors)
        instance_ids: set[str] = set()
        items = hw.findall(f"{{{OVF}}}Item")
        if not items:
            errors.append("VirtualHardwareSection: no Item")
        for i, item in enumerate(items):
            props = [local(c.tag) for c in item]
            names = [n for ns, n in props if ns == RASD]
            if any(ns != RASD for ns, _ in props):
                errors.append(f"Item {i}: children must be rasd: elements")
            unknown = [n for n in names if n not in RASD_PROPERTIES]
            if unknown:
                errors.append(f"Item {i}: unknown RASD properties {unknown}")
            order = [RASD_PROPERTIES.index(n) for n in names if n in RASD_PROPERTIES]
            if order != sorted(order):
                errors.append(f"Item {i}: RASD properties out of schema order: {names}")
            values = {n: (c.text or "") for c, (_ns, n) in zip(item, props, strict=True)}
            for req in ("ElementName", "InstanceID", "ResourceType"):
                if not values.get(req):
                    errors.append(f"Item {i}: rasd:{req} is required")
            iid = values.get("InstanceID", "")
            if iid in instance_ids:
                errors.append(f"Item {i}: duplicate InstanceID {iid}")
            instance_ids.add(iid)
            rtype = values.get("ResourceType", "")
            if rtype and (not rtype.isdigit() or int(rtype) not in RESOURCE_TYPES):
                errors.append(f"Item {iid}: ResourceType {rtype!r} is not a CIM resource type")
            host = values.get("HostResource")
            if host is not None:
                m = re.match(r"^(?:ovf:)?/(disk|file)/(.+)$", host)
                if not m or (m.group(1) == "disk" and m.group(2) not in disks) or \
                        (m.group(1) == "file" and m.group(2) not in files):
                    errors.append(f"Item {iid}: HostResource {host!r} names no Disk/File")
            conn = values.get("Connection")
            if conn is not None and rtype == "10" and conn not in networks:
                errors.append(f"Item {iid}: Connection {conn!r} names no Network")
        for i, item in enumerate(items):
            parent_ref = item.find(f"{{{RASD}}}Parent")
            if parent_ref is not None and (parent_ref.text or "") not in instance_ids:
                errors.append(f"Item {i}: Parent {parent_ref.text!r} names no InstanceID")
    return errors
