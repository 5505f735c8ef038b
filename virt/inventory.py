"""Reading what a host has, in bulk calls rather than one call per object."""
from __future__ import annotations

import uuid as uuid_module
from dataclasses import dataclass

import libvirt


@dataclass(frozen=True)
class DomainSummary:
    uuid: uuid_module.UUID
    name: str
    state: int
    reason: int
    vcpus: int | None
    memory_kib: int | None


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    libvirt_version: str
    hypervisor_version: str
    hypervisor: str


def list_domains(conn: libvirt.virConnect) -> list[DomainSummary]:
    """Every domain, defined or transient, with its state, in one RPC."""
    stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_BALLOON
                                   | libvirt.VIR_DOMAIN_STATS_VCPU)
    return [_summary(domain, record) for domain, record in stats]


def _summary(domain: libvirt.virDomain, record: dict) -> DomainSummary:
    # name() and UUIDString() read the handle's cached fields: no round trip to the daemon.
    return DomainSummary(
        uuid=uuid_module.UUID(domain.UUIDString()),
        name=domain.name(),
        state=int(record.get("state.state", libvirt.VIR_DOMAIN_NOSTATE)),
        reason=int(record.get("state.reason", 0)),
        vcpus=record.get("vcpu.current"),
        memory_kib=record.get("balloon.maximum"),
    )


def host_facts(conn: libvirt.virConnect) -> HostFacts:
    return HostFacts(
        hostname=conn.getHostname(),
        libvirt_version=_version(conn.getLibVersion()),
        hypervisor_version=_version(conn.getVersion()),
        hypervisor=conn.getType(),
    )


def _version(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"
