"""Virtual network XML (<network>) and network filter XML (<filter>), to read, edit and emit.

The classes hold no policy: what a valid network is for vmsite is decided by the forms and by
virt.networks' builder.
"""
from __future__ import annotations

import uuid as uuid_module
from dataclasses import dataclass

from lxml import etree

from virt.xml.base import (
    XMLChildList, XMLObject, XMLProperty, XMLValueList, at_least, check_xml_text, one_of,
)
from virt.xml.domain import FilterRef, _unicast_mac, _uuid

FORWARD_MODES = ("nat", "route", "open", "bridge", "private", "vepa", "passthrough", "hostdev")


class DHCPRange(XMLObject):
    tag = "range"

    start = XMLProperty("./@start")
    end = XMLProperty("./@end")


class DHCPHost(XMLObject):
    """A static lease: this MAC always gets this address (and name)."""

    tag = "host"

    mac = XMLProperty("./@mac", validate=_unicast_mac)
    ip = XMLProperty("./@ip")
    name = XMLProperty("./@name")


class NetworkIP(XMLObject):
    """One subnet of the network: the host's address on the bridge, its prefix, and DHCP."""

    tag = "ip"
    child_order = {"ip": ("dhcp", "tftp"), "dhcp": ("range", "host", "bootp")}

    family = XMLProperty("./@family", validate=one_of("ipv4", "ipv6"))
    address = XMLProperty("./@address")
    prefix = XMLProperty("./@prefix", int, validate=at_least(0))
    netmask = XMLProperty("./@netmask")
    ranges = XMLChildList(DHCPRange, "./dhcp/range")
    hosts = XMLChildList(DHCPHost, "./dhcp/host")

    @property
    def is_ipv6(self) -> bool:
        return self.family == "ipv6" or ":" in (self.address or "")

    @property
    def prefix_length(self) -> int | None:
        """The prefix, whether the XML gives it as prefix= or as an IPv4 netmask=."""
        if self.prefix is not None:
            return self.prefix
        if self.netmask:
            return sum(bin(int(part)).count("1") for part in self.netmask.split("."))
        return None


class DNSHost(XMLObject):
    """<dns><host ip='...'><hostname>name</hostname>...</host></dns>"""

    tag = "host"

    ip = XMLProperty("./@ip")

    @property
    def hostnames(self) -> list[str]:
        return [(element.text or "").strip() for element in self.element.iterfind("hostname")]

    @hostnames.setter
    def hostnames(self, names: list[str]) -> None:
        for element in list(self.element.iterfind("hostname")):
            self.element.remove(element)
        for name in names:
            etree.SubElement(self.element, "hostname").text = check_xml_text(name)


class PortGroup(XMLObject):
    """A named group of ports (Open vSwitch and other bridges) with a VLAN tag and QoS."""

    tag = "portgroup"
    child_order = {"portgroup": ("vlan", "virtualport", "bandwidth")}

    name = XMLProperty("./@name")
    default = XMLProperty("./@default", bool)
    vlan_tag = XMLProperty("./vlan/tag/@id", int, validate=at_least(1))
    inbound_average = XMLProperty("./bandwidth/inbound/@average", int, validate=at_least(1))
    outbound_average = XMLProperty("./bandwidth/outbound/@average", int, validate=at_least(1))


class Network(XMLObject):
    tag = "network"
    # As libvirt writes them (src/conf/network_conf.c).
    child_order = {
        "network": ("name", "uuid", "metadata", "forward", "bridge", "mtu", "mac", "domain", "dns",
                    "virtualport", "vlan", "portgroup", "bandwidth", "ip", "route"),
        "bandwidth": ("inbound", "outbound"),
    }

    name = XMLProperty("./name")
    uuid = XMLProperty("./uuid", validate=_uuid)
    forward_mode = XMLProperty("./forward/@mode", validate=one_of(*FORWARD_MODES))
    forward_dev = XMLProperty("./forward/@dev")
    forward_interfaces = XMLValueList("./forward/interface/@dev")
    bridge_name = XMLProperty("./bridge/@name")
    bridge_stp = XMLProperty("./bridge/@stp", validate=one_of("on", "off"))
    bridge_delay = XMLProperty("./bridge/@delay", int, validate=at_least(0))
    mtu = XMLProperty("./mtu/@size", int, validate=at_least(68))
    domain_name = XMLProperty("./domain/@name")
    domain_local_only = XMLProperty("./domain/@localOnly", bool)
    virtualport_type = XMLProperty("./virtualport/@type")
    inbound_average = XMLProperty("./bandwidth/inbound/@average", int, validate=at_least(1))
    outbound_average = XMLProperty("./bandwidth/outbound/@average", int, validate=at_least(1))
    ips = XMLChildList(NetworkIP, "./ip")
    dns_hosts = XMLChildList(DNSHost, "./dns/host")
    portgroups = XMLChildList(PortGroup, "./portgroup")

    @property
    def mode(self) -> str:
        """vmsite's name for how the network reaches the outside: nat, route, open, isolated,
        bridge (to a host bridge) or macvtap (private, vepa, passthrough, or bridge with no bridge)."""
        mode = self.forward_mode
        if mode is None:
            return "isolated"
        if mode == "bridge" and self.bridge_name is None:
            return "macvtap"  # a macvtap network in bridge mode names interfaces, not a bridge
        if mode in ("private", "vepa", "passthrough"):
            return "macvtap"
        return mode

    def ip_for(self, family: str) -> NetworkIP | None:
        return next((ip for ip in self.ips if (ip.is_ipv6 if family == "ipv6" else not ip.is_ipv6)), None)

    def summary(self) -> NetworkDescription:
        return NetworkDescription(
            uuid=uuid_module.UUID(self.uuid) if self.uuid else None,
            name=self.name,
            mode=self.mode,
            forward_mode=self.forward_mode,
            forward_dev=self.forward_dev or next(iter(self.forward_interfaces), None),
            bridge=self.bridge_name,
            mtu=self.mtu,
            domain=self.domain_name,
            ips=tuple(
                SubnetSummary(
                    family="ipv6" if ip.is_ipv6 else "ipv4", address=ip.address, prefix=ip.prefix_length,
                    ranges=tuple((r.start, r.end) for r in ip.ranges),
                    hosts=tuple(StaticHostSummary(mac=h.mac, ip=h.ip, name=h.name) for h in ip.hosts),
                )
                for ip in self.ips
            ),
            dns_hosts=tuple((host.ip, tuple(host.hostnames)) for host in self.dns_hosts),
            portgroups=tuple(
                PortGroupSummary(name=group.name, default=bool(group.default), vlan=group.vlan_tag,
                                 inbound=group.inbound_average, outbound=group.outbound_average)
                for group in self.portgroups
            ),
            inbound=self.inbound_average,
            outbound=self.outbound_average,
        )


@dataclass(frozen=True)
class StaticHostSummary:
    mac: str | None
    ip: str | None
    name: str | None


@dataclass(frozen=True)
class SubnetSummary:
    family: str
    address: str | None
    prefix: int | None
    ranges: tuple[tuple[str | None, str | None], ...]
    hosts: tuple[StaticHostSummary, ...]


@dataclass(frozen=True)
class PortGroupSummary:
    name: str | None
    default: bool
    vlan: int | None
    inbound: int | None
    outbound: int | None


@dataclass(frozen=True)
class NetworkDescription:
    """What the inventory keeps of a network's XML."""

    uuid: uuid_module.UUID | None
    name: str | None
    mode: str
    forward_mode: str | None
    forward_dev: str | None
    bridge: str | None
    mtu: int | None
    domain: str | None
    ips: tuple[SubnetSummary, ...]
    dns_hosts: tuple[tuple[str | None, tuple[str, ...]], ...]
    portgroups: tuple[PortGroupSummary, ...]
    inbound: int | None
    outbound: int | None


def summarize_network(xml: str | bytes) -> NetworkDescription:
    return Network.from_libvirt(xml).summary()


class NWFilter(XMLObject):
    """A network filter: rules and references to other filters, in a chain."""

    tag = "filter"

    name = XMLProperty("./@name")
    uuid = XMLProperty("./uuid", validate=_uuid)
    chain = XMLProperty("./@chain")
    priority = XMLProperty("./@priority", int)
    references = XMLChildList(FilterRef, "./filterref")

    @property
    def rule_count(self) -> int:
        return len(self.element.findall("rule"))
