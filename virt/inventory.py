"""Reading what a host has, in a few bulk calls rather than one call per object."""
from __future__ import annotations

import uuid as uuid_module
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

import libvirt

from virt.errors import lookup_or_none, raises_typed
from virt.interfaces import changes_supported
from virt.networks import jsonable, read_leases
from virt.storage import PoolSummary, VolumeSummary, list_all_volumes, list_pools
from virt.xml.capabilities import Capabilities, DomainCapabilities
from virt.xml.network import summarize_network

DOMAIN_STATS = libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_BALLOON | libvirt.VIR_DOMAIN_STATS_VCPU


class DomainSummary(NamedTuple):
    """A tuple, not a dataclass: a host may have thousands, built on every reconcile."""

    uuid: uuid_module.UUID
    name: str
    state: int
    reason: int
    vcpus: int | None
    memory_kib: int | None
    persistent: bool = True
    autostart: bool = False


@dataclass(frozen=True)
class NetworkSummary:
    uuid: uuid_module.UUID
    name: str
    active: bool
    autostart: bool
    persistent: bool
    mode: str = ""
    bridge: str = ""
    details: dict = field(default_factory=dict)  # the XML summary (subnets, DHCP, DNS), see virt.networks
    leases: list | None = None  # virt.networks.LeaseInfo of an active network; None: not readable


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    libvirt_version: str
    hypervisor_version: str
    hypervisor: str
    cpu_count: int | None = None
    memory_kib: int | None = None
    capabilities: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    facts: HostFacts | None  # None when only the objects were read (see read_inventory)
    domains: list[DomainSummary]
    pools: list[PoolSummary]
    networks: list[NetworkSummary]
    volumes: list[VolumeSummary] = field(default_factory=list)  # of the active pools
    read_at: datetime | None = None  # when the read began: rows written since hold a later view


@raises_typed
def read_inventory(conn: libvirt.virConnect, *, with_facts: bool = True) -> Inventory:
    """Everything a host has. Host facts and capabilities change only with the host's software or
    hardware, which means a restarted libvirtd and so a new connection: read them on (re)connect,
    not on every periodic reconcile, where each round trip counts."""
    read_at = datetime.now(timezone.utc)
    return Inventory(facts=host_facts(conn) if with_facts else None, domains=list_domains(conn),
                     pools=list_pools(conn), networks=list_networks(conn), volumes=list_all_volumes(conn),
                     read_at=read_at)


@raises_typed
def list_domains(conn: libvirt.virConnect) -> list[DomainSummary]:
    """Every domain with its state, vCPUs and memory: one stats call plus two filtered lists."""
    stats = conn.getAllDomainStats(DOMAIN_STATS)
    transient = {domain.UUID() for domain in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)}
    autostart = {domain.UUID() for domain in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART)}
    return [_domain_summary(domain, record, transient, autostart) for domain, record in stats]


def _uuids(objects) -> set[str]:
    return {item.UUIDString() for item in objects}


def _domain_summary(domain: libvirt.virDomain, record: dict, transient: set[bytes], autostart: set[bytes]) -> DomainSummary:
    # name() and UUID() read the handle's cached fields: no round trip to the daemon.
    raw_uuid = domain.UUID()
    state = record.get("state.state", libvirt.VIR_DOMAIN_NOSTATE)
    # What the VM has now (as vcpu.current), not its maximum. For a VM that is not running libvirt
    # reports its definition's current memory, or its maximum when it has no balloon device: below
    # the maximum it is the current memory (a change made with no event, `virsh setmem --config`,
    # reaches the row here); at the maximum it may be either, so None: the XML's value stays.
    memory_kib = record.get("balloon.current")
    if state in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED) and memory_kib == record.get("balloon.maximum"):
        memory_kib = None
    return DomainSummary(
        uuid_module.UUID(bytes=raw_uuid),
        domain.name(),
        state,
        record.get("state.reason", 0),
        record.get("vcpu.current"),
        memory_kib,
        raw_uuid not in transient,
        raw_uuid in autostart,
    )


@raises_typed
def list_networks(conn: libvirt.virConnect) -> list[NetworkSummary]:
    """Networks with their subnets and leases: hosts have few, so one description (and one lease
    read per active network) is fine here, and the subnet overlap check needs them all."""
    active = _uuids(conn.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_ACTIVE))
    autostart = _uuids(conn.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_AUTOSTART))
    transient = _uuids(conn.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_TRANSIENT))
    summaries = []
    for network in conn.listAllNetworks():
        uuid = network.UUIDString()
        read = lookup_or_none(_description_and_leases, network, uuid in active, missing=(libvirt.VIR_ERR_NO_NETWORK,))
        if read is None:
            continue  # undefined while we looked
        description, leases = read
        summaries.append(NetworkSummary(
            uuid=uuid_module.UUID(uuid), name=network.name(), active=uuid in active, autostart=uuid in autostart,
            persistent=uuid not in transient, mode=description.mode, bridge=description.bridge or "",
            details=jsonable(description), leases=leases))
    return summaries


def _description_and_leases(network: libvirt.virNetwork, active: bool):
    return summarize_network(network.XMLDesc(0)), read_leases(network) if active else []


@raises_typed
def host_facts(conn: libvirt.virConnect) -> HostFacts:
    _model, memory_mib, cpus, *_rest = conn.getInfo()
    return HostFacts(
        hostname=conn.getHostname(),
        libvirt_version=_version(conn.getLibVersion()),
        hypervisor_version=_version(conn.getVersion()),
        hypervisor=conn.getType(),
        cpu_count=cpus,
        memory_kib=memory_mib * 1024,
        capabilities=host_capabilities(conn),
    )


def _version(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


@raises_typed
def host_capabilities(conn: libvirt.virConnect) -> dict:
    """What the host can run, as plain data for the database: CPU, NUMA, KVM, machines, firmware."""
    caps = Capabilities.from_xml(conn.getCapabilities())
    guest = _preferred_guest(caps)
    facts = {
        "arch": caps.cpu_arch, "cpu_model": caps.cpu_model, "cpu_vendor": caps.cpu_vendor,
        "sockets": caps.topology.sockets if caps.topology else None,
        "cores": caps.topology.cores if caps.topology else None,
        "threads": caps.topology.threads if caps.topology else None,
        "numa_cells": [{"id": cell.id, "memory_kib": cell.memory_kib, "cpus": cell.cpu_count} for cell in caps.cells],
        "kvm": any("kvm" in g.domain_types for g in caps.guests),
        "machines": sorted({m.name for m in guest.machines}) if guest else [],
        "interface_define": changes_supported(conn),
    }
    facts.update(_domain_capabilities(conn, guest, "kvm" if facts["kvm"] else "qemu"))
    return facts


def _preferred_guest(caps: Capabilities):
    hvm = [g for g in caps.guests if g.os_type == "hvm"]
    same_arch = [g for g in hvm if g.arch == caps.cpu_arch]
    return (same_arch or hvm or list(caps.guests) or [None])[0]


def _domain_capabilities(conn: libvirt.virConnect, guest, virt_type: str) -> dict:
    if guest is None:
        return {}
    document = lookup_or_none(conn.getDomainCapabilities, guest.emulator, guest.arch, None, virt_type, 0,
                              missing=(libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG,
                                       libvirt.VIR_ERR_CONFIG_UNSUPPORTED))
    if document is None:
        return {}  # the test driver, or an emulator libvirt cannot probe: show what we have
    domain_caps = DomainCapabilities.from_xml(document)
    return {
        "emulator": domain_caps.emulator, "max_vcpus": domain_caps.max_vcpus,
        # A loader of type rom (SeaBIOS) is always there for x86 even when <firmware> lists only efi.
        "firmware": sorted(set(domain_caps.firmware) | {"bios"}) if guest.arch in ("x86_64", "i686")
        else list(domain_caps.firmware),
        "secure_boot": domain_caps.secure_boot, "cpu_modes": list(domain_caps.cpu_modes),
        "host_model": domain_caps.host_model,
        "cpu_models": [m.name for m in domain_caps.custom_models if m.usable is not False],
        "disk_buses": list(domain_caps.disk_buses), "graphics": list(domain_caps.graphics_types),
    }
