"""What blocks a migration, found before anything moves: devices tied to the source host, a CPU
the destination cannot give the VM, snapshots (libvirt refuses to migrate a VM that has any), and
moving those snapshots' metadata across (libvirt can redefine a snapshot from its XML on another
host: VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE).

The pure functions read a domain's XML and are shared with the migrate form, which runs them on
the XML the database keeps; the others ask the hosts and run in the worker just before migrating."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import libvirt

from virt.errors import has_code, raises_typed, translate
from virt.xml.capabilities import Capabilities
from virt.xml.domain import Domain as DomainXML

logger = logging.getLogger(__name__)


SNAPSHOTS_IN_COPIED_DISKS = (
    "Its snapshots are stored inside its disk images, and a copy-storage migration copies only their current "
    "state: the snapshots would be lost. Delete them first, or migrate over storage both hosts share.")


@dataclass(frozen=True)
class SavedSnapshot:
    """A snapshot's definition, kept in memory while its metadata moves to another host."""

    name: str
    xml: str
    current: bool


def local_devices(domain_xml: str) -> list[str]:
    """The VM's devices that bind it to the hardware or the files of its host (libvirt refuses
    to migrate them), in words."""
    document = DomainXML.from_libvirt(domain_xml)
    return ([f"a host device passed through ({device.type or device.mode or 'hostdev'})"
             for device in document.hostdevs]
            + [f"a folder of the host shared into the guest ({share.source_dir or share.type or 'filesystem'})"
               for share in document.filesystems])


def cpu_mode(domain_xml: str) -> str:
    """The VM's CPU mode: host-passthrough, host-model, custom, or "" when it has no <cpu>."""
    return _cpu_mode(DomainXML.from_libvirt(domain_xml))


def _cpu_mode(document: DomainXML) -> str:
    cpu = document.cpu
    if cpu is None:
        return ""
    return cpu.mode or ("custom" if cpu.model is not None else "")


def passthrough_refusal(*, source_cpu: str, destination_cpu: str) -> str | None:
    """A host-passthrough guest sees its host's exact CPU, so it may only move to a host with the
    same one. `*_cpu` are "vendor model" as the hosts report them."""
    if source_cpu and source_cpu == destination_cpu:
        return None
    return (f"Its CPU is host-passthrough: the guest sees this host's exact CPU ({source_cpu or 'unknown'}), "
            f"and the destination's is {destination_cpu or 'unknown'}. A running guest cannot change CPU: shut it "
            "off and move it offline, or give it a host-model or named CPU first.")


@raises_typed
def host_cpu(conn: libvirt.virConnect) -> str:
    caps = Capabilities.from_xml(conn.getCapabilities())
    return " ".join(part for part in (caps.cpu_vendor, caps.cpu_model) if part)


@raises_typed
def cpu_refusal(destination_conn: libvirt.virConnect, domain_xml: str) -> str | None:
    """Ask the destination whether its hypervisor can give this VM's CPU (the running VM's
    migratable definition, where host-model is already expanded into a model and features). None:
    it can, or the VM names no CPU (QEMU's default model, which every host has)."""
    document = DomainXML.from_libvirt(domain_xml)
    cpu = document.cpu
    if cpu is None or _cpu_mode(document) != "custom" or cpu.model is None:
        return None
    try:
        result = destination_conn.compareHypervisorCPU(
            document.emulator, document.arch, document.machine, document.type,
            cpu.to_xml(), libvirt.VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE)
    except libvirt.libvirtError as exc:
        if has_code(exc, libvirt.VIR_ERR_CPU_INCOMPATIBLE):
            return exc.get_error_message()
        raise translate(exc) from exc
    return "the destination's CPU is incompatible" if result == libvirt.VIR_CPU_COMPARE_INCOMPATIBLE else None


@raises_typed
def snapshots_take_away(domain: libvirt.virDomain, names_in_order: list[str]) -> list[SavedSnapshot]:
    """Keep each snapshot's definition (parents first), then delete its metadata only (children
    first), leaving the disks' snapshot data where it is. Returns what to redefine elsewhere."""
    saved = []
    for name in names_in_order:
        snapshot = domain.snapshotLookupByName(name, 0)
        saved.append(SavedSnapshot(name=name, xml=snapshot.getXMLDesc(libvirt.VIR_DOMAIN_SNAPSHOT_XML_SECURE),
                                   current=bool(snapshot.isCurrent(0))))
    removed: list[SavedSnapshot] = []
    try:
        for snapshot in reversed(saved):
            domain.snapshotLookupByName(snapshot.name, 0).delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
            removed.insert(0, snapshot)
    except libvirt.libvirtError:
        snapshots_redefine(domain, removed)  # put back what went, then say why
        raise
    return saved


@raises_typed
def snapshots_redefine(domain: libvirt.virDomain, saved: list[SavedSnapshot]) -> list[str]:
    """Define the saved snapshots on `domain` (parents first). Returns the names that failed, each
    with libvirt's reason; the others are defined."""
    failed = []
    for snapshot in saved:
        flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE
        if snapshot.current:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT
        try:
            domain.snapshotCreateXML(snapshot.xml, flags)
        except libvirt.libvirtError as exc:
            logger.warning("snapshot %s could not be redefined: %s", snapshot.name, exc)
            failed.append(f"{snapshot.name} ({exc.get_error_message()})")
    return failed

