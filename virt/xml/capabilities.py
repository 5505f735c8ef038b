"""Read-only views of a host's capabilities and of its domain capabilities.

Both documents come from libvirt and differ between versions and drivers, so every field is
optional: a missing element reads as None or an empty tuple, never as an error.
"""
from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from virt.xml.base import parse_trusted
from virt.xml.units import to_kib


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _texts(node: etree._Element | None, path: str) -> tuple[str, ...]:
    if node is None:
        return ()
    return tuple(element.text or "" for element in node.findall(path))


def _attribute(node: etree._Element | None, name: str) -> str | None:
    return node.get(name) if node is not None else None


def _supported(node: etree._Element | None) -> etree._Element | None:
    """node, unless libvirt marked it supported='no'."""
    return node if node is not None and node.get("supported") != "no" else None


def _enum(node: etree._Element | None, name: str) -> tuple[str, ...]:
    node = _supported(node)
    return _texts(node, f"enum[@name='{name}']/value")


@dataclass(frozen=True)
class CPUTopology:
    sockets: int | None
    dies: int | None
    cores: int | None
    threads: int | None


@dataclass(frozen=True)
class NUMACell:
    id: int | None
    memory_kib: int | None
    cpu_count: int


@dataclass(frozen=True)
class MachineType:
    name: str
    canonical: str | None  # set on an alias ("pc"): the versioned type it stands for
    max_cpus: int | None
    deprecated: bool


@dataclass(frozen=True)
class GuestCapabilities:
    """One <guest>: an OS type on one architecture, and what can run it."""

    os_type: str | None
    arch: str | None
    wordsize: int | None
    emulator: str | None
    machines: tuple[MachineType, ...]
    domain_types: tuple[str, ...]  # qemu, kvm, test, ...


@dataclass(frozen=True)
class Capabilities:
    """virConnect.getCapabilities(): the host and the guests it can run."""

    host_uuid: str | None
    cpu_arch: str | None
    cpu_model: str | None
    cpu_vendor: str | None
    topology: CPUTopology | None
    cells: tuple[NUMACell, ...]
    guests: tuple[GuestCapabilities, ...]

    @classmethod
    def from_xml(cls, text: str | bytes) -> Capabilities:
        root = parse_trusted(text)
        return cls(
            host_uuid=root.findtext("host/uuid"),
            cpu_arch=root.findtext("host/cpu/arch"),
            cpu_model=root.findtext("host/cpu/model"),
            cpu_vendor=root.findtext("host/cpu/vendor"),
            topology=_topology(root.find("host/cpu/topology")),
            cells=tuple(_cell(cell) for cell in root.findall("host/topology/cells/cell")),
            guests=tuple(_guest(guest) for guest in root.findall("guest")),
        )


def _topology(node: etree._Element | None) -> CPUTopology | None:
    if node is None:
        return None
    return CPUTopology(sockets=_int(node.get("sockets")), dies=_int(node.get("dies")),
                       cores=_int(node.get("cores")), threads=_int(node.get("threads")))


def _cell(node: etree._Element) -> NUMACell:
    amount = _int(node.findtext("memory"))
    unit = _attribute(node.find("memory"), "unit")
    cpu_count = _int(_attribute(node.find("cpus"), "num"))
    return NUMACell(
        id=_int(node.get("id")),
        memory_kib=None if amount is None else to_kib(amount, unit),
        cpu_count=cpu_count if cpu_count is not None else len(node.findall("cpus/cpu")),
    )


def _guest(node: etree._Element) -> GuestCapabilities:
    return GuestCapabilities(
        os_type=node.findtext("os_type"),
        arch=_attribute(node.find("arch"), "name"),
        wordsize=_int(node.findtext("arch/wordsize")),
        emulator=node.findtext("arch/emulator"),
        machines=tuple(_machine(machine) for machine in node.findall("arch/machine")),
        domain_types=tuple(domain.get("type", "") for domain in node.findall("arch/domain")),
    )


def _machine(node: etree._Element) -> MachineType:
    return MachineType(name=node.text or "", canonical=node.get("canonical"),
                       max_cpus=_int(node.get("maxCpus")),
                       deprecated=node.get("deprecated") == "yes")


@dataclass(frozen=True)
class CPUModel:
    name: str
    usable: bool | None  # None: libvirt cannot tell ("unknown")
    vendor: str | None


@dataclass(frozen=True)
class DomainCapabilities:
    """virConnect.getDomainCapabilities(): what one emulator, machine and arch support."""

    emulator: str | None
    domain_type: str | None
    machine: str | None
    arch: str | None
    max_vcpus: int | None
    firmware: tuple[str, ...]  # what <os firmware='...'> accepts: bios, efi
    loader_paths: tuple[str, ...]
    loader_types: tuple[str, ...]  # rom, pflash
    secure_boot: bool
    cpu_modes: tuple[str, ...]  # the supported ones among host-passthrough, host-model, ...
    host_model: str | None  # the CPU model host-model would give
    custom_models: tuple[CPUModel, ...]
    disk_devices: tuple[str, ...]
    disk_buses: tuple[str, ...]
    graphics_types: tuple[str, ...]
    video_models: tuple[str, ...]

    @classmethod
    def from_xml(cls, text: str | bytes) -> DomainCapabilities:
        root = parse_trusted(text)
        loader = _supported(root.find("os/loader"))
        devices = root.find("devices")
        return cls(
            emulator=root.findtext("path"),
            domain_type=root.findtext("domain"),
            machine=root.findtext("machine"),
            arch=root.findtext("arch"),
            max_vcpus=_int(_attribute(root.find("vcpu"), "max")),
            firmware=_enum(root.find("os"), "firmware"),
            loader_paths=_texts(loader, "value"),
            loader_types=_enum(loader, "type"),
            secure_boot="yes" in _enum(loader, "secure"),
            cpu_modes=tuple(mode.get("name", "") for mode in root.findall("cpu/mode")
                            if mode.get("supported") == "yes"),
            host_model=_host_model(root),
            custom_models=_custom_models(root),
            disk_devices=_enum(_device(devices, "disk"), "diskDevice"),
            disk_buses=_enum(_device(devices, "disk"), "bus"),
            graphics_types=_enum(_device(devices, "graphics"), "type"),
            video_models=_enum(_device(devices, "video"), "modelType"),
        )


def _device(devices: etree._Element | None, tag: str) -> etree._Element | None:
    return devices.find(tag) if devices is not None else None


def _host_model(root: etree._Element) -> str | None:
    mode = _supported(root.find("cpu/mode[@name='host-model']"))
    return mode.findtext("model") if mode is not None else None


_USABLE = {"yes": True, "no": False}


def _custom_models(root: etree._Element) -> tuple[CPUModel, ...]:
    mode = _supported(root.find("cpu/mode[@name='custom']"))
    if mode is None:
        return ()
    return tuple(
        CPUModel(name=model.text or "", usable=_USABLE.get(model.get("usable", "")),
                 vendor=model.get("vendor"))
        for model in mode.findall("model")
    )
