"""Host interface XML (<interface> of libvirt's interface API: ethernet, bridge, bond, VLAN) and the
network part of a node device's XML (<device> of capability net).

Not a VM's NIC: that is `virt.xml.domain.Interface`, an element of a domain's <devices>.
"""
from __future__ import annotations

from virt.xml.base import XMLChildList, XMLFlag, XMLObject, XMLProperty, at_least, one_of

INTERFACE_TYPES = ("ethernet", "bridge", "bond", "vlan")


class InterfaceAddress(XMLObject):
    """<ip address='10.251.9.2' prefix='24'/> inside <protocol>."""

    tag = "ip"

    address = XMLProperty("./@address")
    prefix = XMLProperty("./@prefix", int, validate=at_least(0))


class InterfaceProtocol(XMLObject):
    """<protocol family='ipv4'>: how the interface gets its addresses of one family."""

    tag = "protocol"
    child_order = {"protocol": ("dhcp", "autoconf", "ip", "route")}

    family = XMLProperty("./@family", validate=one_of("ipv4", "ipv6"))
    dhcp = XMLFlag("./dhcp")
    addresses = XMLChildList(InterfaceAddress, "./ip")


class InterfaceMember(XMLObject):
    """An interface inside a bridge or a bond, or the one a VLAN rides on: <interface name='eth1'/>."""

    tag = "interface"

    type = XMLProperty("./@type", validate=one_of(*INTERFACE_TYPES))
    name = XMLProperty("./@name")


class HostInterfaceXML(XMLObject):
    tag = "interface"
    # As libvirt writes them (src/conf/interface_conf.c).
    child_order = {"interface": ("start", "mac", "link", "mtu", "protocol", "bridge", "bond", "vlan")}

    type = XMLProperty("./@type", validate=one_of(*INTERFACE_TYPES))
    name = XMLProperty("./@name")
    start_mode = XMLProperty("./start/@mode", validate=one_of("onboot", "none", "hotplug"))
    mac = XMLProperty("./mac/@address")
    link_speed = XMLProperty("./link/@speed", int)  # Mbit/s
    link_state = XMLProperty("./link/@state")
    mtu = XMLProperty("./mtu/@size", int, validate=at_least(1))
    protocols = XMLChildList(InterfaceProtocol, "./protocol")
    bridge_stp = XMLProperty("./bridge/@stp", validate=one_of("on", "off"))
    bridge_delay = XMLProperty("./bridge/@delay")  # seconds, possibly a fraction
    bridge_members = XMLChildList(InterfaceMember, "./bridge/interface")
    bond_mode = XMLProperty("./bond/@mode")
    bond_members = XMLChildList(InterfaceMember, "./bond/interface")
    vlan_tag = XMLProperty("./vlan/@tag", int, validate=at_least(0))
    vlan_parent = XMLProperty("./vlan/interface/@name")

    @property
    def members(self) -> list[str]:
        """The names of the interfaces inside a bridge or a bond (none for other types)."""
        members = {"bridge": self.bridge_members, "bond": self.bond_members}.get(self.type or "", [])
        return [member.name or "" for member in members]


class NetDeviceXML(XMLObject):
    """A node device of capability net: the kernel's view of a network interface."""

    tag = "device"

    interface = XMLProperty("./capability[@type='net']/interface")
    address = XMLProperty("./capability[@type='net']/address")  # its MAC address
    link_speed = XMLProperty("./capability[@type='net']/link/@speed", int)  # Mbit/s
    link_state = XMLProperty("./capability[@type='net']/link/@state")
