"""Host interfaces (physical, bridge, bond, VLAN) from libvirt's interface and node-device APIs,
and defining or deleting them inside libvirt's change transaction where the host supports it.

Most current distributions (Debian's libvirt among them) build the interface driver on udev, which
lists interfaces read-only: `changes_supported` tells, and define/delete refuse early there.
"""
from __future__ import annotations

import uuid as uuid_module
from dataclasses import dataclass, field

import libvirt

from virt.errors import (InvalidArgument, NotFound, OperationInvalid, VirtError, has_code, lookup_or_none,
                         raises_typed, translated)
from virt.xml.base import ChildList
from virt.xml.host_interface import HostInterfaceXML, InterfaceMember, NetDeviceXML

# Interfaces have no UUID in libvirt; vmsite names each by one derived from its name.
_NAMESPACE = uuid_module.UUID("1b0e7a8e-6c1f-4f0a-9d55-2f1c4a3b9e10")
_UNKNOWN_SPEED = 4294967295  # what libvirt reports for "unknown" (-1 as unsigned)
READ_ONLY_MESSAGE = ("This host's libvirt manages interfaces read-only (its interface driver is built on udev, "
                     "as on Debian and most current distributions): create, change and delete bridges, VLANs "
                     "and bonds with the host's own tools (ifupdown, NetworkManager, systemd-networkd).")
KINDS = ("bridge", "vlan", "bond")
BOND_MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb")


@dataclass(frozen=True)
class InterfaceSummary:
    uuid: uuid_module.UUID
    name: str
    kind: str
    mac: str
    active: bool
    details: dict = field(default_factory=dict)


def interface_uuid(name: str) -> uuid_module.UUID:
    return uuid_module.uuid5(_NAMESPACE, name)


@raises_typed
def list_interfaces(conn: libvirt.virConnect) -> list[InterfaceSummary]:
    """Every interface the interface API knows, completed and extended by the node devices of
    capability 'net' (which also list interfaces the interface driver leaves out)."""
    devices = _net_devices(conn)
    summaries = {}
    for interface in conn.listAllInterfaces(0):
        # An interface removed while we looked answers "no interface", or, from the udev backend
        # reading a device half gone, an internal error ("Could not parse MTU value '<null>'", seen
        # while other guests' taps and bridges came and went): skip it; a node device of that name
        # still lists it below.
        summary = lookup_or_none(_summary, interface, devices.get(interface.name(), {}),
                                 missing=(libvirt.VIR_ERR_NO_INTERFACE, libvirt.VIR_ERR_INTERNAL_ERROR))
        if summary is None:
            continue
        summaries[summary.name] = summary
    for name, device in devices.items():
        if name not in summaries:
            summaries[name] = InterfaceSummary(
                uuid=interface_uuid(name), name=name, kind="ethernet", mac=device.get("mac", ""),
                active=device.get("state") == "up", details={**device, "source": "node device"})
    return sorted(summaries.values(), key=lambda summary: summary.name)


def _net_devices(conn: libvirt.virConnect) -> dict[str, dict]:
    devices = lookup_or_none(conn.listAllDevices, libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_NET,
                             missing=(libvirt.VIR_ERR_NO_SUPPORT,))
    if devices is None:
        return {}
    found = {}
    for device in devices:
        net = NetDeviceXML.from_libvirt(device.XMLDesc(0))
        if not net.interface:
            continue
        found[net.interface] = {"mac": (net.address or "").lower(), "speed": _speed(net.link_speed),
                                "state": net.link_state, "device": device.name()}
    return found


def _speed(reported: int | None) -> int | None:
    return None if reported in (_UNKNOWN_SPEED, 0) else reported


def _summary(interface: libvirt.virInterface, device: dict) -> InterfaceSummary:
    xml = HostInterfaceXML.from_libvirt(interface.XMLDesc(0))
    kind = xml.type or "ethernet"
    details = {
        "mtu": xml.mtu,
        "speed": _speed(xml.link_speed) or device.get("speed"),
        "state": xml.link_state or device.get("state"),
        "start": xml.start_mode,
        "addresses": [f"{ip.address}/{ip.prefix}" for protocol in xml.protocols for ip in protocol.addresses],
        "dhcp": [protocol.family for protocol in xml.protocols if protocol.dhcp],
        "members": xml.members,
    }
    if kind == "bond" and xml.bond_mode is not None:
        details["bond_mode"] = xml.bond_mode
    if kind == "vlan" and xml.vlan_tag is not None:
        details["vlan"] = xml.vlan_tag
        details["parent"] = xml.vlan_parent
    return InterfaceSummary(uuid=interface_uuid(interface.name()), name=interface.name(), kind=kind,
                            mac=(xml.mac if xml.mac is not None else device.get("mac", "")) or "",
                            active=bool(interface.isActive()), details=details)


@raises_typed
def changes_supported(conn: libvirt.virConnect) -> bool:
    """Whether the host's interface driver can define interfaces: begin a change transaction and
    roll it straight back (nothing changed in between). udev-based drivers refuse the begin."""
    try:
        with translated():
            conn.changeBegin(0)
    except VirtError as exc:
        if has_code(exc, libvirt.VIR_ERR_NO_SUPPORT):
            return False
        if has_code(exc, libvirt.VIR_ERR_OPERATION_INVALID):
            return True  # another transaction is open (someone's change, or a concurrent probe): supported
        raise
    conn.changeRollback(0)
    return True


# ---------------------------------------------------------------------------------------------
# Building and defining


@dataclass(frozen=True)
class InterfaceSpec:
    kind: str  # bridge, vlan or bond
    name: str
    members: tuple[str, ...] = ()  # bridge and bond: the ethernet interfaces inside
    vlan: int | None = None
    parent: str | None = None  # vlan: the interface that carries it
    bond_mode: str = "active-backup"
    stp: bool = False
    start_mode: str = "onboot"
    ipv4: str | None = None  # "dhcp", "10.251.1.2/24" or None (no address)
    mtu: int | None = None


def build_interface(spec: InterfaceSpec) -> str:
    if spec.kind not in KINDS:
        raise InvalidArgument(f"{spec.kind!r} is not an interface kind ({', '.join(KINDS)}).")
    xml = HostInterfaceXML.new()
    xml.type = spec.kind
    xml.name = spec.name
    xml.start_mode = spec.start_mode
    if spec.mtu:
        xml.mtu = spec.mtu
    if spec.ipv4:
        _ipv4(xml, spec.ipv4)
    if spec.kind == "bridge":
        xml.bridge_stp = "on" if spec.stp else "off"
        xml.bridge_delay = "0"
        _add_members(xml.bridge_members, spec.members)
    elif spec.kind == "bond":
        xml.bond_mode = spec.bond_mode
        _add_members(xml.bond_members, spec.members)
    else:
        xml.vlan_tag = spec.vlan
        xml.vlan_parent = spec.parent or ""
    return xml.to_xml()


def _ipv4(xml: HostInterfaceXML, ipv4: str) -> None:
    protocol = xml.protocols.add()
    protocol.family = "ipv4"
    if ipv4 == "dhcp":
        protocol.dhcp = True
    else:
        address, _slash, prefix = ipv4.partition("/")
        ip = protocol.addresses.add()
        ip.address = address
        ip.prefix = int(prefix)


def _add_members(members: ChildList[InterfaceMember], names: tuple[str, ...]) -> None:
    for name in names:
        member = members.add()
        member.type = "ethernet"
        member.name = name


@raises_typed
def in_transaction(conn: libvirt.virConnect, change) -> str:
    """Run change(conn) between changeBegin and changeCommit; on any failure, roll back and re-raise."""
    with translated():
        try:
            conn.changeBegin(0)
        except libvirt.libvirtError as exc:
            if has_code(exc, libvirt.VIR_ERR_NO_SUPPORT):
                raise OperationInvalid(READ_ONLY_MESSAGE) from exc
            raise
        try:
            message = change(conn)
        except BaseException:
            conn.changeRollback(0)
            raise
        conn.changeCommit(0)
        return message


@raises_typed
def define_interface(conn: libvirt.virConnect, spec: InterfaceSpec, *, start: bool = True) -> str:
    """Define (or redefine, for an existing name) and optionally start an interface, in a transaction."""
    def change(conn: libvirt.virConnect) -> str:
        existing = {interface.name() for interface in conn.listAllInterfaces(0)}
        for member in [*spec.members, *([spec.parent] if spec.parent else [])]:
            if member not in existing | _enslaved(conn):
                raise NotFound(f"The host has no interface {member!r}.")
        interface = conn.interfaceDefineXML(build_interface(spec), 0)
        if start and not interface.isActive():
            interface.create(0)
        verb = "Changed" if spec.name in existing else "Defined"
        return f"{verb} the {spec.kind} {spec.name}" + (" and started it" if start else "") + " (committed)"
    return in_transaction(conn, change)


def _enslaved(conn: libvirt.virConnect) -> set[str]:
    """Interfaces inside a bridge or bond: some drivers list only the bridge or bond itself."""
    names = set()
    for interface in conn.listAllInterfaces(0):
        xml = HostInterfaceXML.from_libvirt(interface.XMLDesc(0))
        names.update(member.name for member in [*xml.bridge_members, *xml.bond_members])
    return names


@raises_typed
def delete_interface(conn: libvirt.virConnect, name: str) -> str:
    def change(conn: libvirt.virConnect) -> str:
        interface = lookup_or_none(conn.interfaceLookupByName, name)
        if interface is None:
            raise NotFound(f"The host has no interface {name!r}.", code=libvirt.VIR_ERR_NO_INTERFACE)
        if interface.isActive():
            interface.destroy(0)
        interface.undefine()
        return f"Deleted the interface {name} (committed)"
    return in_transaction(conn, change)
