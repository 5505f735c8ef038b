"""Domain XML: the <domain> element, its devices, and a small read-only summary for inventory.

The classes cover what vmsite reads and edits; anything else in a document stays untouched.
"""
from __future__ import annotations

import re
import uuid as uuid_module
from dataclasses import dataclass

from lxml import etree

from virt.xml.base import (
    XMLChild, XMLChildList, XMLFlag, XMLObject, XMLProperty, XMLValueList, at_least, check_xml_text, one_of,
)
from virt.xml.units import to_kib

# vmsite's own metadata in a domain's XML: <metadata><vmsite:template/></metadata> marks a template.
# libvirt keeps it with the definition, so it survives a re-register of the host.
METADATA_NS = "http://vmsite.local/xmlns/domain/1.0"
METADATA_PREFIX = "vmsite"
# A VM's tags (backup jobs select by them): <metadata><vmsitetags:tags><vmsitetags:tag name='web'/>...
# A namespace of their own, as libvirt keeps one metadata element per namespace (the template mark's).
TAGS_NS = "http://vmsite.local/xmlns/tags/1.0"
TAGS_PREFIX = "vmsitetags"
TAG_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
TAG_RULE = "a tag is 1 to 32 lower-case letters, digits, dots, dashes or underscores, starting with a letter or digit"
MAX_TAGS = 16
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"

_MAC = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", re.IGNORECASE)
_UUID = re.compile(r"[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}", re.IGNORECASE)


def _unicast_mac(value: str) -> None:
    if not _MAC.fullmatch(value):
        raise ValueError(f"{value!r} is not a MAC address like 52:54:00:12:34:56")
    if int(value[:2], 16) & 1:
        raise ValueError(f"{value!r} is a multicast address; the first octet must be even")


def _uuid(value: str) -> None:
    if not _UUID.fullmatch(value):
        raise ValueError(f"{value!r} is not a UUID like 6695eb01-f6a4-8304-79aa-97f2502e193f")


def _port(value: int) -> None:
    if not -1 <= value <= 65535:  # -1: let libvirt choose
        raise ValueError(f"{value} is not a port (-1 or 0 to 65535)")


class MemoryProperty(XMLProperty):
    """An amount of memory in KiB, whatever unit the XML holds; written back in KiB."""

    def __init__(self, xpath: str) -> None:
        super().__init__(xpath, int, validate=at_least(1))
        self.unit = XMLProperty(xpath + "/@unit")

    def read(self, obj: XMLObject) -> int | None:
        amount = super().read(obj)
        return None if amount is None else to_kib(amount, self.unit.read(obj))

    def write(self, obj: XMLObject, text: str) -> None:
        super().write(obj, text)
        self.unit.write(obj, "KiB")


class Disk(XMLObject):
    tag = "disk"
    child_order = {"disk": ("driver", "source", "backingStore", "target", "iotune", "readonly",
                            "shareable", "serial", "boot", "alias", "address")}

    type = XMLProperty("./@type",
                       validate=one_of("file", "block", "dir", "network", "volume", "nvme",
                                       "vhostuser"))
    device = XMLProperty("./@device", validate=one_of("disk", "cdrom", "floppy", "lun"))
    driver_name = XMLProperty("./driver/@name")
    driver_type = XMLProperty("./driver/@type")  # the image format: qcow2, raw, ...
    source_file = XMLProperty("./source/@file")
    source_dev = XMLProperty("./source/@dev")
    source_pool = XMLProperty("./source/@pool")
    source_volume = XMLProperty("./source/@volume")
    source_protocol = XMLProperty("./source/@protocol")
    source_name = XMLProperty("./source/@name")
    target_dev = XMLProperty("./target/@dev")
    target_bus = XMLProperty("./target/@bus")
    readonly = XMLFlag("./readonly")
    shareable = XMLFlag("./shareable")
    boot_order = XMLProperty("./boot/@order", int, validate=at_least(1))
    cache = XMLProperty("./driver/@cache",
                        validate=one_of("default", "none", "writethrough", "writeback", "directsync", "unsafe"))

    @property
    def source(self) -> str | None:
        """Where the data is, in one string: a path, pool/volume, or a network disk's name."""
        if self.source_pool and self.source_volume:
            return f"{self.source_pool}/{self.source_volume}"
        return self.source_file or self.source_dev or self.source_name


class FilterRef(XMLObject):
    """<filterref filter='clean-traffic'><parameter name='IP' value='...'/></filterref>, in a NIC or a filter."""

    tag = "filterref"

    filter = XMLProperty("./@filter")

    @property
    def parameters(self) -> dict[str, str]:
        return {element.get("name", ""): element.get("value", "") for element in self.element.iterfind("parameter")}

    @parameters.setter
    def parameters(self, values: dict[str, str]) -> None:
        for element in list(self.element.iterfind("parameter")):
            self.element.remove(element)
        for name, value in values.items():
            etree.SubElement(self.element, "parameter", name=check_xml_text(name), value=check_xml_text(value))


class Interface(XMLObject):
    tag = "interface"
    child_order = {"interface": ("mac", "source", "virtualport", "target", "model", "driver",
                                 "filterref", "bandwidth", "link", "mtu", "boot", "rom", "alias", "address"),
                   "bandwidth": ("inbound", "outbound")}

    type = XMLProperty("./@type")  # network, bridge, direct, user, ...
    source_network = XMLProperty("./source/@network")
    source_bridge = XMLProperty("./source/@bridge")
    source_dev = XMLProperty("./source/@dev")
    source_mode = XMLProperty("./source/@mode")  # for direct: bridge, vepa, private, passthrough
    mac = XMLProperty("./mac/@address", validate=_unicast_mac)
    model = XMLProperty("./model/@type")
    link_state = XMLProperty("./link/@state", validate=one_of("up", "down"))
    boot_order = XMLProperty("./boot/@order", int, validate=at_least(1))
    rom_enabled = XMLProperty("./rom/@enabled", bool)
    filter_name = XMLProperty("./filterref/@filter")
    bandwidth_inbound = XMLProperty("./bandwidth/inbound/@average", int, validate=at_least(1))
    bandwidth_outbound = XMLProperty("./bandwidth/outbound/@average", int, validate=at_least(1))
    portgroup = XMLProperty("./source/@portgroup")
    target_dev = XMLProperty("./target/@dev")

    filterref = XMLChild(FilterRef, "./filterref")

    def set_filter(self, name: str | None, parameters: dict[str, str] | None = None) -> None:
        """Apply the nwfilter `name` with its parameters (like IP), or remove the filter with None."""
        self.filter_name = None
        for element in self.element.findall("filterref"):
            self.element.remove(element)
        if name:
            self.filter_name = name
            self.filterref.parameters = parameters or {}

    @property
    def source(self) -> str | None:
        """The network, bridge or host device the interface is attached to, by its type."""
        return {"network": self.source_network, "bridge": self.source_bridge,
                "direct": self.source_dev}.get(self.type or "")


class Graphics(XMLObject):
    """A graphical console. The password can be set and cleared, never read."""

    tag = "graphics"

    type = XMLProperty("./@type",
                       validate=one_of("vnc", "spice", "sdl", "rdp", "desktop", "egl-headless",
                                       "dbus"))
    port = XMLProperty("./@port", int, validate=_port)
    autoport = XMLProperty("./@autoport", bool)
    # libvirt writes the address twice, as an attribute and as a <listen> element; both are kept
    # equal, as libvirt refuses a document where they differ.
    _listen_attribute = XMLProperty("./@listen")
    _listen_element = XMLFlag("./listen[@type='address']")
    _listen_element_address = XMLProperty("./listen[@type='address']/@address")

    @property
    def listen_address(self) -> str | None:
        return self._listen_element_address or self._listen_attribute

    @listen_address.setter
    def listen_address(self, value: str | None) -> None:
        if value is None:
            self._listen_element = False
        else:
            self._listen_element_address = value
        self._listen_attribute = value

    @property
    def has_password(self) -> bool:
        """Only XML fetched with VIR_DOMAIN_XML_SECURE holds the password at all."""
        return self.element.get("passwd") is not None

    def copy_password_from(self, other: Graphics) -> None:
        """Give this console other's password (or none), without the password leaving the model."""
        self.set_password(other.element.get("passwd"))

    def set_password(self, value: str | None) -> None:
        """Set the console password, or remove it with None."""
        if value is None:
            self.element.attrib.pop("passwd", None)
        else:
            self.element.set("passwd", check_xml_text(value))


class _CharDevice(XMLObject):
    child_order = {"serial": ("source", "target"), "console": ("source", "target")}

    type = XMLProperty("./@type")  # pty, file, unix, tcp, ...
    source_path = XMLProperty("./source/@path")
    target_port = XMLProperty("./target/@port", int, validate=at_least(0))


class Serial(_CharDevice):
    tag = "serial"


class Console(_CharDevice):
    tag = "console"

    target_type = XMLProperty("./target/@type")  # serial, virtio, ...


class Controller(XMLObject):
    """<controller type='pci' model='pcie-root-port'/>: libvirt numbers it (index) and places it."""

    tag = "controller"

    type = XMLProperty("./@type")  # pci, usb, sata, scsi, virtio-serial, ...
    model = XMLProperty("./@model")  # for pci: pcie-root, pcie-root-port, pcie-to-pci-bridge, ...
    index = XMLProperty("./@index", int, validate=at_least(0))


class Channel(_CharDevice):
    """A host-guest channel, like the guest agent's virtio-serial port org.qemu.guest_agent.0."""

    tag = "channel"
    child_order = {"channel": ("source", "target")}

    target_type = XMLProperty("./target/@type")  # virtio, guestfwd, xen
    target_name = XMLProperty("./target/@name")
    target_state = XMLProperty("./target/@state")  # of a running VM: connected or disconnected


class HostDevice(XMLObject):
    """<hostdev>: a device of the host passed through to the guest."""

    tag = "hostdev"

    mode = XMLProperty("./@mode")  # subsystem or capabilities
    type = XMLProperty("./@type")  # pci, usb, scsi, mdev, ...


class Filesystem(XMLObject):
    """<filesystem>: a folder of the host shared into the guest."""

    tag = "filesystem"

    type = XMLProperty("./@type")  # mount, file, block, ...
    source_dir = XMLProperty("./source/@dir")


class CPUFeature(XMLObject):
    """<feature policy='disable' name='vmx'/> inside <cpu>."""

    tag = "feature"

    policy = XMLProperty("./@policy", validate=one_of("force", "require", "optional", "disable", "forbid"))
    name = XMLProperty("./@name")


class CPU(XMLObject):
    """<cpu>: the guest's CPU. On its own it is what a host is asked whether it can give."""

    tag = "cpu"
    child_order = {"cpu": ("model", "vendor", "topology", "feature")}

    mode = XMLProperty("./@mode", validate=one_of("custom", "host-model", "host-passthrough", "maximum"))
    model = XMLProperty("./model")
    features = XMLChildList(CPUFeature, "./feature")


class FirmwareFeature(XMLObject):
    """<feature enabled='yes' name='secure-boot'/> inside <os><firmware>: what the firmware must have."""

    tag = "feature"

    enabled = XMLProperty("./@enabled", bool)
    name = XMLProperty("./@name")


def validate_tag(value: str) -> None:
    if not TAG_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r}: {TAG_RULE}")


class TagList(XMLObject):
    """<tags><tag name='web'/>...</tags>: the element libvirt's setMetadata stores, in TAGS_NS."""

    tag = "tags"

    names = XMLValueList("./tag/@name", validate=validate_tag)


class TemplateMark(XMLObject):
    """<template/>: the element libvirt's setMetadata stores, in METADATA_NS, to mark a template."""

    tag = "template"


@dataclass(frozen=True)
class DiskSummary:
    target: str | None
    device: str | None
    source: str | None
    format: str | None
    bus: str | None


@dataclass(frozen=True)
class InterfaceSummary:
    type: str | None
    source: str | None
    mac: str | None
    model: str | None
    link_state: str | None = None  # None: up, libvirt's default
    filter: str | None = None  # the nwfilter applied to the NIC
    target: str | None = None  # the host's tap device (vnetN) of a running VM


@dataclass(frozen=True)
class GraphicsSummary:
    type: str | None
    listen: str | None
    port: int | None


@dataclass(frozen=True)
class DomainDescription:
    """What the inventory keeps of a domain's XML. Never a password."""

    name: str | None
    uuid: uuid_module.UUID | None
    title: str | None
    description: str | None
    memory_kib: int | None
    current_memory_kib: int | None
    vcpus: int | None
    max_vcpus: int | None
    os_type: str | None
    arch: str | None
    machine: str | None
    firmware: str | None
    disks: tuple[DiskSummary, ...]
    interfaces: tuple[InterfaceSummary, ...]
    graphics: tuple[GraphicsSummary, ...]
    # q35 and other PCIe machines: pcie-root-ports with nothing plugged in, each takes one
    # hot-plugged PCIe device (virtio disk, NIC). None: not a PCIe machine, not counted.
    free_hotplug_ports: int | None = None
    has_memory_balloon: bool = False  # a <memballoon> that is not model='none'
    tags: tuple[str, ...] = ()  # vmsite's tags, from its <metadata>


class Domain(XMLObject):
    tag = "domain"
    # As libvirt writes them (src/conf/domain_conf.c), for the elements the model can create.
    child_order = {
        "domain": ("name", "uuid", "genid", "title", "description", "metadata", "maxMemory",
                   "memory", "currentMemory", "blkiotune", "memtune", "memoryBacking", "vcpu",
                   "vcpus", "iothreads", "cputune", "numatune", "resource", "sysinfo", "os",
                   "features", "cpu", "clock", "on_poweroff", "on_reboot", "on_crash", "pm",
                   "perf", "devices", "seclabel"),
        "os": ("type", "firmware", "loader", "nvram", "kernel", "initrd", "cmdline", "boot",
               "bootmenu", "smbios", "bios"),
        "cpu": ("model", "vendor", "topology", "feature"),
        "devices": ("emulator", "disk", "controller", "lease", "filesystem", "interface",
                    "smartcard", "serial", "parallel", "console", "channel", "input", "tpm",
                    "graphics", "sound", "audio", "video", "hostdev", "redirdev", "watchdog",
                    "memballoon", "rng", "panic"),
    }

    type = XMLProperty("./@type")  # kvm, qemu, test
    name = XMLProperty("./name")
    uuid = XMLProperty("./uuid", validate=_uuid)
    title = XMLProperty("./title")
    description = XMLProperty("./description")
    memory = MemoryProperty("./memory")
    current_memory = MemoryProperty("./currentMemory")
    max_vcpus = XMLProperty("./vcpu", int, validate=at_least(1))
    current_vcpus = XMLProperty("./vcpu/@current", int, validate=at_least(1))
    os_type = XMLProperty("./os/type")
    arch = XMLProperty("./os/type/@arch")
    machine = XMLProperty("./os/type/@machine")
    firmware = XMLProperty("./os/@firmware", validate=one_of("bios", "efi"))
    firmware_features = XMLChildList(FirmwareFeature, "./os/firmware/feature")
    nvram = XMLProperty("./os/nvram")  # the VM's own copy of the firmware's variables: a path on the host
    kernel = XMLProperty("./os/kernel")  # direct kernel boot: a path on the host
    initrd = XMLProperty("./os/initrd")
    cmdline = XMLProperty("./os/cmdline")
    boot_devices = XMLValueList("./os/boot/@dev", validate=one_of("hd", "cdrom", "network", "fd"))
    cpu_mode = XMLProperty("./cpu/@mode",
                           validate=one_of("custom", "host-model", "host-passthrough", "maximum"))
    cpu_model = XMLProperty("./cpu/model")
    cpu_match = XMLProperty("./cpu/@match", validate=one_of("minimum", "exact", "strict"))
    cpu_model_fallback = XMLProperty("./cpu/model/@fallback", validate=one_of("allow", "forbid"))
    cpu = XMLChild(CPU, "./cpu")
    acpi = XMLFlag("./features/acpi")
    apic = XMLFlag("./features/apic")
    emulator = XMLProperty("./devices/emulator")
    memballoon_model = XMLProperty("./devices/memballoon/@model", validate=one_of("virtio", "none"))

    disks = XMLChildList(Disk, "./devices/disk")
    interfaces = XMLChildList(Interface, "./devices/interface")
    graphics = XMLChildList(Graphics, "./devices/graphics")
    serials = XMLChildList(Serial, "./devices/serial")
    consoles = XMLChildList(Console, "./devices/console")
    controllers = XMLChildList(Controller, "./devices/controller")
    hostdevs = XMLChildList(HostDevice, "./devices/hostdev")
    filesystems = XMLChildList(Filesystem, "./devices/filesystem")
    is_template = XMLFlag(f"./metadata/{METADATA_PREFIX}:template", namespaces={METADATA_PREFIX: METADATA_NS})
    tags = XMLValueList(f"./metadata/{TAGS_PREFIX}:tags/{TAGS_PREFIX}:tag/@name", namespaces={TAGS_PREFIX: TAGS_NS})

    @property
    def guest_agent_connected(self) -> bool:
        """Whether a running VM's guest agent is connected (live XML only)."""
        return any(channel.target_name == GUEST_AGENT_CHANNEL and channel.target_state == "connected"
                   for channel in self.channels)

    @property
    def is_pcie_machine(self) -> bool:
        return "q35" in (self.machine or "") or any(
            controller.type == "pci" and controller.model == "pcie-root" for controller in self.controllers)

    def free_hotplug_ports(self) -> int | None:
        """The pcie-root-ports no device sits on (as libvirt placed them), or None for a machine
        without PCIe, whose PCI root bus takes hot-plugged devices directly."""
        if not self.is_pcie_machine:
            return None
        ports = {controller.index for controller in self.controllers
                 if controller.type == "pci" and controller.model == "pcie-root-port" and controller.index is not None}
        used = {int(bus, 0) for bus in self.element.xpath("./devices/*/address[@type='pci']/@bus")}
        return len(ports - used)
    channels = XMLChildList(Channel, "./devices/channel")

    def summary(self) -> DomainDescription:
        return DomainDescription(
            name=self.name,
            uuid=uuid_module.UUID(self.uuid) if self.uuid else None,
            title=self.title,
            description=self.description,
            memory_kib=self.memory,
            current_memory_kib=self.current_memory,
            vcpus=self.current_vcpus or self.max_vcpus,
            max_vcpus=self.max_vcpus,
            os_type=self.os_type,
            arch=self.arch,
            machine=self.machine,
            firmware=self.firmware,
            disks=tuple(
                DiskSummary(target=disk.target_dev, device=disk.device, source=disk.source,
                            format=disk.driver_type, bus=disk.target_bus)
                for disk in self.disks
            ),
            interfaces=tuple(
                InterfaceSummary(type=nic.type, source=nic.source, mac=nic.mac, model=nic.model,
                                 link_state=nic.link_state, filter=nic.filter_name, target=nic.target_dev)
                for nic in self.interfaces
            ),
            graphics=tuple(
                GraphicsSummary(type=graphics.type, listen=graphics.listen_address,
                                port=graphics.port)
                for graphics in self.graphics
            ),
            free_hotplug_ports=self.free_hotplug_ports(),
            has_memory_balloon=self.memballoon_model not in (None, "none"),
            tags=tuple(self.tags),
        )


def summarize_domain(xml: str | bytes) -> DomainDescription:
    """The summary of a domain XML document that libvirt produced (XMLDesc)."""
    return Domain.from_libvirt(xml).summary()
