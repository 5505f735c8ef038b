"""The XML object model: domain and network XML to edit and emit, capabilities to read.

Plain lxml, no Django and no libvirt calls: callers pass in the XML libvirt gave them.
"""
from virt.xml.base import (
    MAX_XML_BYTES, ChildList, XMLChild, XMLChildList, XMLFlag, XMLObject, XMLProperty, XMLRejected,
    XMLValueList, check_xml_text, parse_trusted, parse_untrusted,
)
from virt.xml.capabilities import (
    Capabilities, CPUModel, CPUTopology, DomainCapabilities, GuestCapabilities, MachineType,
    NUMACell,
)
from virt.xml.domain import (
    Channel, Console, Controller, Disk, DiskSummary, Domain, DomainDescription, Graphics, GraphicsSummary,
    Interface, InterfaceSummary, MemoryProperty, Serial, summarize_domain,
)
from virt.xml.network import (
    DHCPHost, DHCPRange, DNSHost, Network, NetworkDescription, NetworkIP, NWFilter, PortGroup, summarize_network,
)
from virt.xml.units import to_kib

__all__ = [
    "MAX_XML_BYTES", "CPUModel", "CPUTopology", "Capabilities", "Channel", "ChildList", "Console", "Controller", "Disk",
    "DiskSummary", "Domain", "DomainCapabilities", "DomainDescription", "Graphics", "GraphicsSummary",
    "GuestCapabilities", "Interface", "InterfaceSummary", "MachineType", "MemoryProperty",
    "NUMACell", "Serial", "XMLChild", "XMLChildList", "XMLFlag", "XMLObject", "XMLProperty", "XMLRejected",
    "XMLValueList", "check_xml_text", "parse_trusted", "parse_untrusted", "summarize_domain",
    "to_kib", "DHCPHost", "DHCPRange", "DNSHost", "Network", "NetworkDescription", "NetworkIP", "NWFilter",
    "PortGroup", "summarize_network",
]
