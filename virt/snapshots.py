"""Internal snapshots of a domain: read the tree, take, revert to and delete one.

libvirt's QEMU driver keeps internal snapshots inside the qcow2 images themselves (memory too,
for a running VM), so every writable disk must be qcow2, and a VM without disks cannot have one.
It also refuses a disk-only internal snapshot of a running VM: its live snapshots always include
the memory. Both rules are checked here first, so that the refusal names the disk and the way out.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import libvirt

from virt.domains import is_running
from virt.errors import AlreadyExists, NotFound, OperationInvalid, lookup_or_none, raises_typed
from virt.xml.domain import Disk
from virt.xml.domain import Domain as DomainXML
from virt.xml.snapshot import DomainSnapshot, SnapshotDisk


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot as the inventory keeps it; `depth` is its level in the tree (roots are 0)."""

    name: str
    description: str
    parent: str | None
    state: str  # the VM's state when it was taken: running, shutoff, paused...
    created: int  # seconds since the epoch
    with_memory: bool
    current: bool
    depth: int


@raises_typed
def read_tree(domain: libvirt.virDomain) -> list[SnapshotInfo]:
    """Every snapshot of the domain, depth first: each parent before its children, oldest first."""
    parsed = [(DomainSnapshot.from_libvirt(snapshot.getXMLDesc(0)), bool(snapshot.isCurrent(0)))
              for snapshot in domain.listAllSnapshots(0)]
    names = {xml.name for xml, _current in parsed}
    children: dict[str | None, list[tuple[DomainSnapshot, bool]]] = defaultdict(list)
    for xml, current in parsed:
        children[xml.parent_name if xml.parent_name in names else None].append((xml, current))
    tree: list[SnapshotInfo] = []

    def visit(parent: str | None, depth: int) -> None:
        for xml, current in sorted(children[parent], key=lambda item: (item[0].creation_time or 0, item[0].name)):
            tree.append(SnapshotInfo(name=xml.name, description=xml.description or "", parent=xml.parent_name,
                                     state=xml.state or "", created=xml.creation_time or 0,
                                     with_memory=xml.has_memory, current=current, depth=depth))
            visit(xml.name, depth + 1)

    visit(None, 0)
    return tree


@raises_typed
def count(domain: libvirt.virDomain) -> int:
    return domain.snapshotNum(0)


@raises_typed
def check_supported(domain: libvirt.virDomain, *, with_memory: bool) -> list[Disk]:
    """The disks an internal snapshot would cover; raises OperationInvalid, in words, when libvirt
    could not take the snapshot asked for."""
    disks = snapshot_disks(domain)
    refusal = snapshot_refusal(running=is_running(domain), with_memory=with_memory,
                               disks=[(disk.target_dev, disk.source, disk.driver_type) for disk in disks])
    if refusal:
        raise OperationInvalid(refusal)
    return disks


def snapshot_refusal(*, running: bool, with_memory: bool,
                     disks: list[tuple[str | None, str | None, str | None]]) -> str | None:
    """Why an internal snapshot cannot be taken, or None. disks: (target, source, format) of each
    writable disk. Plain data in, so that a form can ask the same question of the inventory."""
    if with_memory and not running:
        return "The VM is shut off, so it has no memory to save: take a disk-only snapshot."
    if not with_memory and running:
        return ("A snapshot of a running VM must include its memory: libvirt takes disk-only snapshots of a "
                "running VM only as external snapshots, which it cannot revert. Choose 'with memory', or "
                "shut the VM off first.")
    if not disks:
        return ("This VM has no disks: libvirt keeps internal snapshots (memory included) inside qcow2 disk "
                "images, so there is nowhere to store one. Add a qcow2 disk first.")
    for target, source, fmt in disks:
        if fmt != "qcow2":
            return (f"Disk {target} ({source or 'no source'}) is {fmt or 'raw'}: internal snapshots need every "
                    "disk to be qcow2. Convert it to qcow2 or detach it first.")
    return None


@raises_typed
def snapshot_disks(domain: libvirt.virDomain) -> list[Disk]:
    """The writable disks (not CD-ROMs, not read-only ones), as the domain runs now."""
    xml = DomainXML.from_libvirt(domain.XMLDesc(0))
    return [disk for disk in xml.disks if disk.device in (None, "disk") and not disk.readonly]


@raises_typed
def create(domain: libvirt.virDomain, *, name: str, description: str = "", with_memory: bool) -> str:
    disks = check_supported(domain, with_memory=with_memory)
    if name in domain.snapshotListNames(0):
        raise AlreadyExists(f"The VM already has a snapshot named {name!r}.")
    snapshot = DomainSnapshot.new()
    snapshot.name = name
    snapshot.description = description or None
    snapshot.memory_snapshot = "internal" if with_memory else "no"
    for disk in disks:
        entry = snapshot.disks.add(SnapshotDisk.new())
        entry.name = disk.target_dev
        entry.snapshot = "internal"
    domain.snapshotCreateXML(snapshot.to_xml(), 0)
    return f"Snapshot {name} taken ({'with memory' if with_memory else 'disks only'})"


@raises_typed
def revert(domain: libvirt.virDomain, *, name: str) -> str:
    domain.revertToSnapshot(_lookup(domain, name), 0)
    return f"Reverted to {name}: the VM is now {'running' if is_running(domain) else 'shut off'}"


@raises_typed
def delete(domain: libvirt.virDomain, *, name: str, with_children: bool) -> str:
    """Delete one snapshot; its children move up to its parent unless they go with it."""
    snapshot = _lookup(domain, name)
    descendants = snapshot.numChildren(libvirt.VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS)
    children = snapshot.numChildren(0)
    snapshot.delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN if with_children else 0)
    if with_children and descendants:
        return f"Deleted {name} and the {descendants} snapshot(s) below it"
    if children:
        return f"Deleted {name}; its {children} child snapshot(s) now hang from its parent"
    return f"Deleted {name}"


def _lookup(domain: libvirt.virDomain, name: str) -> libvirt.virDomainSnapshot:
    snapshot = lookup_or_none(domain.snapshotLookupByName, name, 0)
    if snapshot is None:
        raise NotFound(f"The VM has no snapshot named {name!r} (any more).", code=libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT)
    return snapshot
