"""Turns a validated description of a new VM into domain XML, through the XML object model.

The policy (defaults, what is allowed) lives in the form that fills DomainSpec; this module
only lays it out the way libvirt expects (nova's config/designer split).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from virt.xml.domain import Domain

TARGET_PREFIX = {"virtio": "vd", "sata": "sd", "scsi": "sd", "ide": "hd"}
# PCIe root ports a q35 VM gets, as virt-install gives (its num_pcie_root_ports; 14, not 16, for
# QEMU 6.1's trouble with 15 or more). Ports cannot be hot-plugged themselves, and each
# hot-plugged disk or NIC takes one: those the VM's own devices leave free are its hot-plug room.
PCIE_ROOT_PORTS = 14


@dataclass(frozen=True)
class DiskSpec:
    path: str  # the volume's path on the host, resolved from a pool volume, never typed by a user
    device: str = "disk"  # disk or cdrom
    format: str = "qcow2"
    bus: str = "virtio"
    cache: str = "default"


@dataclass(frozen=True)
class NicSpec:
    kind: str  # network, bridge or direct
    source: str
    model: str = "virtio"
    mac: str | None = None  # None: libvirt generates one
    direct_mode: str = "bridge"
    boot_rom: bool = True


@dataclass(frozen=True)
class DomainSpec:
    name: str
    virt_type: str  # kvm or qemu
    arch: str
    machine: str
    emulator: str | None
    firmware: str  # bios, efi, efi-secure
    vcpus: int
    max_vcpus: int
    memory_kib: int
    max_memory_kib: int
    cpu_mode: str  # host-passthrough, host-model, custom
    cpu_model: str | None = None
    cpu_disabled_features: list[str] = field(default_factory=list)
    disks: list[DiskSpec] = field(default_factory=list)
    nics: list[NicSpec] = field(default_factory=list)
    boot: list[str] = field(default_factory=lambda: ["hd"])
    vnc: bool = True
    vnc_listen: str = "127.0.0.1"
    serial: bool = True
    title: str | None = None
    description: str | None = None


def build_domain_xml(spec: DomainSpec) -> str:
    domain = Domain.new()
    domain.type = spec.virt_type
    domain.name = spec.name
    if spec.title:
        domain.title = spec.title
    if spec.description:
        domain.description = spec.description
    domain.memory = spec.max_memory_kib
    domain.current_memory = spec.memory_kib
    domain.max_vcpus = spec.max_vcpus
    domain.current_vcpus = spec.vcpus
    _os(domain, spec)
    _cpu(domain, spec)
    domain.acpi = True
    domain.apic = True
    if spec.emulator:
        domain.emulator = spec.emulator
    if "q35" in spec.machine:
        _pcie_root_ports(domain, PCIE_ROOT_PORTS)
    _disks(domain, spec.disks)
    for nic in spec.nics:
        _nic(domain, nic)
    if spec.serial:
        _serial_console(domain)
    if spec.vnc:
        graphics = domain.graphics.add()
        graphics.type = "vnc"
        graphics.autoport = True
        graphics.listen_address = spec.vnc_listen
    return domain.to_xml()


def _os(domain: Domain, spec: DomainSpec) -> None:
    domain.os_type = "hvm"
    domain.arch = spec.arch
    domain.machine = spec.machine
    domain.boot_devices = spec.boot
    if spec.firmware in ("efi", "efi-secure"):
        domain.firmware = "efi"
        for name in ("secure-boot", "enrolled-keys"):
            feature = domain.firmware_features.add()
            feature.enabled = spec.firmware == "efi-secure"
            feature.name = name


def _cpu(domain: Domain, spec: DomainSpec) -> None:
    domain.cpu_mode = spec.cpu_mode
    if spec.cpu_mode == "custom" and spec.cpu_model:
        domain.cpu_match = "exact"
        domain.cpu_model = spec.cpu_model
        domain.cpu_model_fallback = "forbid"
    for name in spec.cpu_disabled_features:
        feature = domain.cpu.features.add()
        feature.policy = "disable"
        feature.name = name


def _pcie_root_ports(domain: Domain, count: int) -> None:
    root = domain.controllers.add()  # libvirt wants pcie-root as PCI controller 0 once any port is given
    root.type, root.model, root.index = "pci", "pcie-root", 0
    for _ in range(count):
        port = domain.controllers.add()
        port.type, port.model = "pci", "pcie-root-port"


def _disks(domain: Domain, disks: list[DiskSpec]) -> None:
    used: dict[str, int] = {}
    for spec in disks:
        disk = domain.disks.add()
        disk.type = "file"
        disk.device = spec.device
        disk.driver_name = "qemu"
        disk.driver_type = spec.format
        if spec.cache != "default":
            disk.cache = spec.cache
        disk.source_file = spec.path
        prefix = TARGET_PREFIX[spec.bus]
        disk.target_dev = prefix + "abcdefghijklmnopqrstuvwxyz"[used.get(prefix, 0)]
        used[prefix] = used.get(prefix, 0) + 1
        disk.target_bus = spec.bus
        if spec.device == "cdrom":
            disk.readonly = True


def _nic(domain: Domain, spec: NicSpec) -> None:
    nic = domain.interfaces.add()
    nic.type = spec.kind
    if spec.mac:
        nic.mac = spec.mac
    if spec.kind == "network":
        nic.source_network = spec.source
    elif spec.kind == "bridge":
        nic.source_bridge = spec.source
    else:
        nic.source_dev = spec.source
        nic.source_mode = spec.direct_mode
    nic.model = spec.model
    if not spec.boot_rom:
        nic.rom_enabled = False


def _serial_console(domain: Domain) -> None:
    serial = domain.serials.add()
    serial.type = "pty"
    serial.target_port = 0
    console = domain.consoles.add()
    console.type = "pty"
    console.target_type = "serial"
    console.target_port = 0
