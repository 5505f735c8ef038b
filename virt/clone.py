"""Full clones of a shut-off domain, and the template mark that lives in the domain's own XML.

A clone gets a new name, a new UUID and new MAC addresses (libvirt generates both when they are
left out), and a full copy of every writable disk that is a storage pool volume, made by libvirt
(`createXMLFrom`) next to the original. CD-ROMs and read-only disks are shared, not copied.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import libvirt

from virt.connection import close_quietly, open_monitored
from virt.devices import disk_format
from virt.domains import find_disk_volume, is_running
from virt.volumes import require_free_domain_name
from virt.errors import AlreadyExists, OperationInvalid, raises_typed
from virt.xml.domain import METADATA_NS, METADATA_PREFIX, Disk, TemplateMark
from virt.xml.domain import Domain as DomainXML
from virt.xml.storage import VolumeXML

Progress = Callable[[int, str], None]


def is_template_xml(xml: str | bytes) -> bool:
    """Whether the domain XML carries vmsite's template mark (`DomainXML.is_template`)."""
    return DomainXML.from_libvirt(xml).is_template


@raises_typed
def is_template(domain: libvirt.virDomain) -> bool:
    return is_template_xml(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


@raises_typed
def mark_template(domain: libvirt.virDomain, *, template: bool) -> str:
    """Mark a shut-off, defined VM as a template, or unmark it."""
    if template:
        if not domain.isPersistent():
            raise OperationInvalid("Only a defined (persistent) VM can be a template.")
        if is_running(domain):
            raise OperationInvalid("Shut the VM off before marking it as a template.")
        mark = TemplateMark.new().to_xml()
        domain.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, mark, METADATA_PREFIX, METADATA_NS,
                           libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        return "Marked as a template"
    if is_template(domain):
        domain.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, METADATA_NS,
                           libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    return "No longer a template"


@dataclass(frozen=True)
class DiskCopy:
    disk: Disk  # the clone's disk element, pointed at the copy once it exists
    source: libvirt.virStorageVol
    copy_name: str


@dataclass(frozen=True)
class CloneResult:
    uuid: str
    name: str
    volumes: list[str]  # paths of the copies
    keys: list[str] = field(default_factory=list)  # their keys, in the same order
    formats: list[str] = field(default_factory=list)  # the format each copy was made in


@raises_typed
def clone(conn: libvirt.virConnect, domain: libvirt.virDomain, *, uri: str, new_name: str, progress: Progress,
          vet: Callable[[libvirt.virStorageVol], str], poll_interval: float = 0.5) -> CloneResult:
    """Copy the shut-off VM's disks and define the clone; copies made before a failure are removed.
    uri: the host's, for the private connection each copy runs on (see copy_volume).
    vet: checks a disk's volume before anything is copied and gives the format to copy it in
    (vmsite's record, never the probed one); it raises to refuse the clone."""
    if is_running(domain):
        raise OperationInvalid("Shut the VM off before cloning it: its disks must not change while they are copied.")
    require_free_domain_name(conn, new_name)
    # SECURE: a console password goes with the clone rather than leaving it unprotected.
    xml = DomainXML.from_libvirt(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
    copies = _plan_copies(conn, xml, new_name)
    formats = [vet(planned.source) for planned in copies]
    made: list[libvirt.virStorageVol] = []
    try:
        for index, planned in enumerate(copies):
            low, high = 10 + 80 * index // len(copies), 10 + 80 * (index + 1) // len(copies)
            label = f"Copying {planned.disk.target_dev} ({index + 1} of {len(copies)})"
            progress(low, label)
            copy = copy_volume(planned.source, planned.copy_name, uri=uri, poll_interval=poll_interval,
                               fmt=formats[index],
                               progress=lambda done: progress(low + int((high - low) * done), label))
            made.append(copy)
            _point_at(planned.disk, copy, formats[index])
        progress(92, f"Defining {new_name}")
        make_distinct(xml, new_name)
        new = conn.defineXML(xml.to_xml())
    except BaseException:
        for volume in made:
            _delete_quietly(volume)
        raise
    return CloneResult(uuid=new.UUIDString(), name=new_name, volumes=[volume.path() for volume in made],
                       keys=[volume.key() for volume in made], formats=formats)


@raises_typed
def copy_volume(source: libvirt.virStorageVol, name: str, *, uri: str, progress: Callable[[float], None],
                fmt: str, poll_interval: float = 0.5) -> libvirt.virStorageVol:
    """A full copy of source, in its pool, made in fmt (the caller's record of the source's format;
    libvirt reads the source in the format it reports, so the caller checks that the two agree).
    While libvirt copies (in a thread), progress gets the fraction done: the copy's allocation
    against the source's, which is what is
    actually copied (a sparse image's capacity never fills).

    The copy runs on a private connection to uri: a connection answers one call at a time, so on
    source's own connection every allocation query would wait for the whole copy."""
    pool = source.storagePoolLookupByVolume()
    volume = VolumeXML.new()
    volume.name = name
    volume.capacity = VolumeXML.from_libvirt(source.XMLDesc(0)).capacity
    volume.format = fmt
    _type, capacity, allocation = source.info()
    total = allocation or capacity or 1
    outcome: dict = {}

    copier = open_monitored(uri, on_close=lambda reason: None)  # a lost host fails the copy call itself

    def run() -> None:
        try:
            copy_pool = copier.storagePoolLookupByName(pool.name())
            copier_source = copier.storageVolLookupByKey(source.key())
            copy_pool.createXMLFrom(volume.to_xml(), copier_source, 0)
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"copy-{name}", daemon=True)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(poll_interval)
            copied = _allocation(pool, name)
            if copied is not None and worker.is_alive():
                progress(min(0.99, copied / total))
    finally:
        worker.join()  # libvirt cannot cancel a copy: wait, so that a failed clone can remove it
        close_quietly(copier)
    if "error" in outcome:
        raise outcome["error"]
    progress(1.0)
    return pool.storageVolLookupByName(name)


def _allocation(pool: libvirt.virStoragePool, name: str) -> int | None:
    try:
        return pool.storageVolLookupByName(name).info()[2]
    except libvirt.libvirtError:
        return None  # not listed yet: libvirt adds it to the pool a moment after the copy starts


def _plan_copies(conn: libvirt.virConnect, xml: DomainXML, new_name: str) -> list[DiskCopy]:
    """What to copy, checked before anything is copied: every writable disk must be a pool volume,
    and no copy's name may be taken."""
    copies = []
    for disk in xml.disks:
        if disk.device not in (None, "disk") or disk.readonly or not disk.source:
            continue
        source = find_disk_volume(conn, disk.source)
        if source is None:
            raise OperationInvalid(f"Disk {disk.target_dev} ({disk.source}) is not a volume of a storage pool: "
                                   "vmsite copies only pool volumes.")
        copy_name = f"{new_name}-{disk.target_dev}{PurePosixPath(source.name()).suffix}"
        pool = source.storagePoolLookupByVolume()
        if _allocation(pool, copy_name) is not None:
            raise AlreadyExists(f"The pool {pool.name()} already has a volume named {copy_name!r}.")
        copies.append(DiskCopy(disk=disk, source=source, copy_name=copy_name))
    return copies


def _point_at(disk: Disk, copy: libvirt.virStorageVol, fmt: str) -> None:
    disk.driver_type = disk_format(fmt)
    if disk.type == "volume":
        disk.source_volume = copy.name()
    elif disk.type == "block":
        disk.source_dev = copy.path()
    else:
        disk.source_file = copy.path()


def make_distinct(xml: DomainXML, new_name: str) -> None:
    """New name; no UUID and no MACs, so libvirt generates fresh ones; no template mark."""
    xml.name = new_name
    xml.uuid = None
    for nic in xml.interfaces:
        nic.mac = None
    xml.is_template = False
    xml.nvram = None  # libvirt makes a fresh NVRAM file from the firmware's template for the new name
    for graphics in xml.graphics:
        if graphics.autoport is False:  # a fixed console port would clash with the original's
            graphics.port = None
            graphics.autoport = True


def _delete_quietly(volume: libvirt.virStorageVol) -> None:
    try:
        volume.delete(0)
    except libvirt.libvirtError:
        pass  # the copy is already gone; nothing more to undo
