"""Virtual networks: build their XML from a validated spec, define, start, stop, autostart,
undefine, read leases, and add or remove static leases on a running network (virNetworkUpdate).

Everything here takes plain arguments and raises the typed errors of virt.errors.
"""
from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import uuid as uuid_module
from dataclasses import dataclass, field

import libvirt

from virt.errors import (AlreadyExists, InvalidArgument, NotFound, OperationInvalid, lookup_or_none, raises_typed,
                         translated)
from virt.xml.network import DHCPHost, DHCPRange, DNSHost, Network, NetworkDescription, PortGroup

MODES = ("nat", "route", "open", "isolated", "bridge", "macvtap")
MACVTAP_MODES = ("bridge", "private", "vepa", "passthrough")
# Modes whose network has its own bridge, addresses and dnsmasq; the others plug into the host.
ROUTED_MODES = ("nat", "route", "open", "isolated")
UPDATE_LIVE = libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
UPDATE_CONFIG = libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG


# ---------------------------------------------------------------------------------------------
# The builder: validated input in, a Network document out


@dataclass(frozen=True)
class SubnetSpec:
    gateway: str  # the host's address on the network's bridge
    prefix: int
    dhcp_start: str | None = None
    dhcp_end: str | None = None


@dataclass(frozen=True)
class StaticHostSpec:
    mac: str
    ip: str
    name: str | None = None


@dataclass(frozen=True)
class PortGroupSpec:
    name: str
    vlan: int | None = None
    default: bool = False
    inbound_kbps: int | None = None  # QoS of the group's ports: average kilobytes per second
    outbound_kbps: int | None = None


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    mode: str  # one of MODES
    bridge: str | None = None  # nat...isolated: the bridge to create (None: libvirt picks); bridge: the host's
    forward_dev: str | None = None  # nat/route: the host interface to go out by; macvtap: the host interface
    macvtap_mode: str = "bridge"
    ipv4: SubnetSpec | None = None
    ipv6: SubnetSpec | None = None
    domain: str | None = None
    mtu: int | None = None
    dns_hosts: tuple[tuple[str, str], ...] = ()  # (ip, host name)
    static_hosts: tuple[StaticHostSpec, ...] = ()
    inbound_kbps: int | None = None  # QoS: average kilobytes per second
    outbound_kbps: int | None = None
    openvswitch: bool = False
    portgroups: tuple[PortGroupSpec, ...] = field(default=())


def build_network(spec: NetworkSpec) -> Network:
    if spec.mode not in MODES:
        raise InvalidArgument(f"{spec.mode!r} is not a network mode ({', '.join(MODES)}).")
    network = Network.new()
    network.name = spec.name
    if spec.mode == "macvtap":
        network.forward_mode = spec.macvtap_mode
        network.forward_interfaces = [spec.forward_dev] if spec.forward_dev else []
    elif spec.mode == "bridge":
        network.forward_mode = "bridge"
        network.bridge_name = spec.bridge
        if spec.openvswitch:
            network.virtualport_type = "openvswitch"
        for group_spec in spec.portgroups:
            group = network.portgroups.add(PortGroup.new())
            group.name = group_spec.name
            group.vlan_tag = group_spec.vlan
            group.default = True if group_spec.default else None
            group.inbound_average = group_spec.inbound_kbps
            group.outbound_average = group_spec.outbound_kbps
    else:
        if spec.mode != "isolated":
            network.forward_mode = spec.mode
            network.forward_dev = spec.forward_dev if spec.mode in ("nat", "route") else None
        network.bridge_name = spec.bridge
        network.bridge_stp = "on"
        network.bridge_delay = 0
        network.mtu = spec.mtu
        if spec.domain:
            network.domain_name = spec.domain
            network.domain_local_only = True  # names below it are never asked of upstream servers
        for ip, hostname in spec.dns_hosts:
            entry = network.dns_hosts.add(DNSHost.new())
            entry.ip = ip
            entry.hostnames = [hostname]
        for family, subnet in (("ipv4", spec.ipv4), ("ipv6", spec.ipv6)):
            if subnet is not None:
                _add_subnet(network, family, subnet, spec.static_hosts)
    network.inbound_average = spec.inbound_kbps
    network.outbound_average = spec.outbound_kbps
    return network


def _add_subnet(network: Network, family: str, subnet: SubnetSpec, static_hosts: tuple[StaticHostSpec, ...]) -> None:
    ip = network.ips.add()
    if family == "ipv6":
        ip.family = "ipv6"
    ip.address = subnet.gateway
    ip.prefix = subnet.prefix
    if subnet.dhcp_start and subnet.dhcp_end:
        dhcp_range = ip.ranges.add()
        dhcp_range.start = subnet.dhcp_start
        dhcp_range.end = subnet.dhcp_end
    inside = ipaddress.ip_network(f"{subnet.gateway}/{subnet.prefix}", strict=False)
    for host in static_hosts:
        if ipaddress.ip_address(host.ip) in inside:
            ip.hosts.add(_static_host(host, family))


def _static_host(host: StaticHostSpec, family: str) -> DHCPHost:
    entry = DHCPHost.new()
    if family == "ipv4":
        entry.mac = host.mac  # DHCPv6 matches clients by DUID or name, not by MAC
    entry.ip = host.ip
    entry.name = host.name or None
    return entry


# ---------------------------------------------------------------------------------------------
# Subnets


def network_subnets(description: NetworkDescription) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    subnets = []
    for subnet in description.ips:
        if subnet.address and subnet.prefix is not None:
            subnets.append(ipaddress.ip_network(f"{subnet.address}/{subnet.prefix}", strict=False))
    return subnets


def overlapping(candidate: list, others: dict[str, list]) -> list[str]:
    """'10.251.1.0/24 overlaps 10.251.0.0/16 of net-a' for each clash of candidate with others."""
    clashes = []
    for mine in candidate:
        for name, subnets in others.items():
            for theirs in subnets:
                if mine.version == theirs.version and mine.overlaps(theirs):
                    clashes.append(f"{mine} overlaps {theirs} of the network {name}")
    return clashes


@raises_typed
def require_free_subnets(conn: libvirt.virConnect, document: Network, *, except_uuid: str | None = None) -> None:
    """Refuse a network whose subnets overlap one of the host's networks as it is now."""
    others = {}
    for network in conn.listAllNetworks():
        if network.UUIDString() == except_uuid:
            continue
        others[network.name()] = network_subnets(Network.from_libvirt(network.XMLDesc(0)).summary())
    clashes = overlapping(network_subnets(document.summary()), others)
    if clashes:
        raise InvalidArgument("Refused, nothing was defined: " + "; ".join(clashes) + ".")


# ---------------------------------------------------------------------------------------------
# One network


@dataclass(frozen=True)
class LeaseInfo:
    mac: str
    ip: str
    prefix: int | None
    hostname: str
    expiry: datetime.datetime | None
    kind: str  # ipv4 or ipv6
    client_id: str


@dataclass(frozen=True)
class NetworkState:
    uuid: uuid_module.UUID
    name: str
    active: bool
    autostart: bool
    persistent: bool
    mode: str
    bridge: str
    details: dict  # the XML summary as plain data
    xml: str
    leases: list[LeaseInfo] | None  # None: not readable (inactive, or the driver cannot say)


@raises_typed
def lookup(conn: libvirt.virConnect, uuid: str) -> libvirt.virNetwork:
    network = lookup_or_none(conn.networkLookupByUUIDString, uuid)
    if network is None:
        raise NotFound(f"The network {uuid} no longer exists on this host.", code=libvirt.VIR_ERR_NO_NETWORK)
    return network


@raises_typed
def require_free_name(conn: libvirt.virConnect, name: str) -> None:
    if lookup_or_none(conn.networkLookupByName, name) is not None:
        raise AlreadyExists(f"The host already has a network named {name!r}.")


@raises_typed
def define(conn: libvirt.virConnect, document: Network, *, autostart: bool = False,
           start: bool = False) -> libvirt.virNetwork:
    """Define (after the checks against the host as it is now), then optionally set autostart and start."""
    require_free_name(conn, document.name or "")
    require_free_subnets(conn, document)
    network = conn.networkDefineXML(document.to_xml())
    if autostart:
        network.setAutostart(1)
    if start:
        network.create()
    return network


@raises_typed
def start(network: libvirt.virNetwork) -> str:
    if network.isActive():
        return "Already active"
    network.create()
    return "Started"


@raises_typed
def stop(network: libvirt.virNetwork) -> str:
    if not network.isActive():
        return "Already stopped"
    network.destroy()
    return "Stopped"


@raises_typed
def set_autostart(network: libvirt.virNetwork, *, enabled: bool) -> str:
    if not network.isPersistent():
        raise OperationInvalid("The network is transient: it has no definition to start with the host.")
    network.setAutostart(1 if enabled else 0)
    return "Autostart on" if enabled else "Autostart off"


@raises_typed
def undefine(network: libvirt.virNetwork) -> str:
    """Stop the network if it runs, then remove its definition."""
    name = network.name()
    if network.isActive():
        network.destroy()
    if network.isPersistent():
        network.undefine()
    return f"Deleted the network {name}"


@raises_typed
def redefine(conn: libvirt.virConnect, network: libvirt.virNetwork, document: Network) -> str:
    """Replace the definition; a running network keeps its old settings until it is restarted."""
    if not network.isPersistent():
        raise OperationInvalid("The network is transient: it has no definition to change.")
    require_free_subnets(conn, document, except_uuid=network.UUIDString())
    document.uuid = network.UUIDString()
    conn.networkDefineXML(document.to_xml())
    if network.isActive():
        return "Saved; the network is running, so the change applies on its next start (stop and start it)"
    return "Saved"


@dataclass(frozen=True)
class NetworkEdit:
    """What the edit page can change. dhcp_range: (start, end) of the IPv4 subnet, or None to remove."""

    dhcp_range: tuple[str, str] | None
    domain: str | None
    mtu: int | None
    inbound_kbps: int | None
    outbound_kbps: int | None


@raises_typed
def definition(network: libvirt.virNetwork) -> Network:
    """The persistent definition (what the next start uses)."""
    xml = lookup_or_none(network.XMLDesc, libvirt.VIR_NETWORK_XML_INACTIVE,
                         missing=(libvirt.VIR_ERR_INVALID_ARG,))  # the test driver knows no flags
    with translated():
        return Network.from_libvirt(xml if xml is not None else network.XMLDesc(0))


@raises_typed
def edit(conn: libvirt.virConnect, network: libvirt.virNetwork, changes: NetworkEdit) -> str:
    """Change the definition; a running network takes its new DHCP range live (virNetworkUpdate),
    while the domain, MTU and QoS apply from its next start, and the message says which is which."""
    if not network.isPersistent():
        raise OperationInvalid("The network is transient: it has no definition to change.")
    document = definition(network)
    old_range = _ipv4_range(document)
    changed = _apply_edit(document, changes)
    if not changed:
        return "Nothing to change"
    conn.networkDefineXML(document.to_xml())
    live = []
    if network.isActive() and "DHCP range" in changed:
        _replace_range_live(network, old_range, changes.dhcp_range)
        live.append("DHCP range")
    later = [what for what in changed if what not in live]
    message = "Saved"
    if live:
        message += f"; applied live: {', '.join(live)}"
    if later and network.isActive():
        message += f"; applies on the network's next start (stop and start it): {', '.join(later)}"
    return message


def _ipv4_range(document: Network) -> tuple[str, str] | None:
    ip = document.ip_for("ipv4")
    if ip is None or not len(ip.ranges):
        return None
    return ip.ranges[0].start, ip.ranges[0].end


def _apply_edit(document: Network, changes: NetworkEdit) -> list[str]:
    changed = []
    ip = document.ip_for("ipv4")
    if ip is not None and _ipv4_range(document) != changes.dhcp_range:
        for old in list(ip.ranges):
            ip.ranges.remove(old)
        if changes.dhcp_range:
            new = ip.ranges.add()
            new.start, new.end = changes.dhcp_range
        changed.append("DHCP range")
    for label, attribute, value in (("DNS domain", "domain_name", changes.domain), ("MTU", "mtu", changes.mtu),
                                    ("QoS inbound", "inbound_average", changes.inbound_kbps),
                                    ("QoS outbound", "outbound_average", changes.outbound_kbps)):
        if getattr(document, attribute) != value:
            setattr(document, attribute, value)
            changed.append(label)
    if "DNS domain" in changed and changes.domain:
        document.domain_local_only = True
    return changed


def _range_xml(start: str, end: str) -> str:
    element = DHCPRange.new()
    element.start, element.end = start, end
    return element.to_xml()


def _replace_range_live(network: libvirt.virNetwork, old: tuple[str, str] | None,
                        new: tuple[str, str] | None) -> None:
    index = next(index for index, ip in enumerate(read_document(network).ips) if not ip.is_ipv6)
    section = libvirt.VIR_NETWORK_SECTION_IP_DHCP_RANGE
    if new:
        network.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, section, index, _range_xml(*new), UPDATE_LIVE)
    if old:
        network.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, section, index, _range_xml(*old), UPDATE_LIVE)


@raises_typed
def read_document(network: libvirt.virNetwork) -> Network:
    """The running configuration, or the definition of a network that is not running. Static hosts
    and DNS entries are changed in both at once, so either shows them."""
    return Network.from_libvirt(network.XMLDesc(0))


@raises_typed
def read_state(network: libvirt.virNetwork) -> NetworkState:
    xml = network.XMLDesc(0)
    description = Network.from_libvirt(xml).summary()
    active = bool(network.isActive())
    persistent = bool(network.isPersistent())
    return NetworkState(
        uuid=uuid_module.UUID(network.UUIDString()), name=network.name(), active=active,
        autostart=bool(network.autostart()) if persistent else False, persistent=persistent,
        mode=description.mode, bridge=description.bridge or "", details=jsonable(description), xml=xml,
        leases=read_leases(network) if active else [],
    )


@raises_typed
def refetch(conn: libvirt.virConnect, uuid: str) -> NetworkState | None:
    """The network as it is now, or None when it is gone from the host (or undefined while we read it)."""
    return lookup_or_none(lambda: read_state(lookup(conn, uuid)), missing=(libvirt.VIR_ERR_NO_NETWORK,))


def jsonable(description: NetworkDescription) -> dict:
    """Plain JSON data (lists, not tuples), equal to what the database gives back."""
    data = dataclasses.asdict(description)
    data["uuid"] = str(data["uuid"]) if data["uuid"] else None
    return json.loads(json.dumps(data))


# ---------------------------------------------------------------------------------------------
# Leases


@raises_typed
def read_leases(network: libvirt.virNetwork) -> list[LeaseInfo] | None:
    """The network's current DHCP leases; None where the driver cannot tell (the test driver)."""
    raw = lookup_or_none(network.DHCPLeases, missing=(libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_OPERATION_INVALID))
    if raw is None:
        return None
    return [
        LeaseInfo(
            mac=(lease.get("mac") or "").lower(), ip=lease.get("ipaddr") or "", prefix=lease.get("prefix"),
            hostname=lease.get("hostname") or "",
            expiry=datetime.datetime.fromtimestamp(lease["expirytime"], tz=datetime.UTC)
            if lease.get("expirytime") else None,
            kind="ipv6" if lease.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV6 else "ipv4",
            client_id=lease.get("clientid") or lease.get("iaid") or "",
        )
        for lease in raw
    ]


def _update_flags(network: libvirt.virNetwork) -> tuple[int, str]:
    flags, scopes = 0, []
    if network.isActive():
        flags |= UPDATE_LIVE
        scopes.append("live")
    if network.isPersistent():
        flags |= UPDATE_CONFIG
        scopes.append("persistently")
    return flags, " and ".join(scopes)


def _ip_index(document: Network, ip: str) -> int:
    """Which <ip> of the network holds the address (virNetworkUpdate's parentIndex)."""
    address = ipaddress.ip_address(ip)
    for index, subnet in enumerate(document.ips):
        if subnet.address and subnet.prefix_length is not None and address in ipaddress.ip_network(
                f"{subnet.address}/{subnet.prefix_length}", strict=False):
            return index
    raise InvalidArgument(f"{ip} is in none of the network's subnets.")


@raises_typed
def add_static_host(network: libvirt.virNetwork, host: StaticHostSpec) -> str:
    """Add a static lease to the running network and to its definition, without a restart."""
    document = read_document(network)
    index = _ip_index(document, host.ip)
    for existing in document.ips[index].hosts:
        if (existing.mac or "").lower() == host.mac.lower():
            raise AlreadyExists(f"The network already has a static lease for {host.mac} ({existing.ip}).")
        if existing.ip == host.ip:
            raise AlreadyExists(f"The network already gives {host.ip} to {existing.mac}.")
    family = "ipv6" if document.ips[index].is_ipv6 else "ipv4"
    flags, scope = _update_flags(network)
    network.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, index,
                   _static_host(host, family).to_xml(), flags)
    return f"Added the static lease {host.mac} → {host.ip}, {scope}"


@raises_typed
def remove_static_host(network: libvirt.virNetwork, *, mac: str) -> str:
    document = read_document(network)
    for index, subnet in enumerate(document.ips):
        for existing in subnet.hosts:
            if (existing.mac or "").lower() == mac.lower():
                flags, scope = _update_flags(network)
                network.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
                               index, existing.to_xml(), flags)
                return f"Removed the static lease {mac} → {existing.ip}, {scope}"
    raise NotFound(f"The network has no static lease for {mac}.")


@raises_typed
def add_dns_host(network: libvirt.virNetwork, *, ip: str, hostname: str) -> str:
    entry = DNSHost.new()
    entry.ip = ip
    entry.hostnames = [hostname]
    flags, scope = _update_flags(network)
    network.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, libvirt.VIR_NETWORK_SECTION_DNS_HOST, -1,
                   entry.to_xml(), flags)
    return f"Added the DNS entry {hostname} → {ip}, {scope}"


@raises_typed
def remove_dns_host(network: libvirt.virNetwork, *, ip: str) -> str:
    document = read_document(network)
    for entry in document.dns_hosts:
        if entry.ip == ip:
            flags, scope = _update_flags(network)
            network.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, libvirt.VIR_NETWORK_SECTION_DNS_HOST, -1,
                           entry.to_xml(), flags)
            return f"Removed the DNS entry for {ip}, {scope}"
    raise NotFound(f"The network has no DNS entry for {ip}.")


@raises_typed
def network_uuid(network: libvirt.virNetwork) -> str:
    return network.UUIDString()
