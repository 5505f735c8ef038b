"""Backup files moved between hosts through libvirt's storage streams: a restore point's second
copy in a pool of another host, and restores onto another host than the one holding the files.

A file is read through a download stream from one host and written through an upload stream to the
other (virt/streams.py), so neither host needs anything but libvirt. An incremental file is a qcow2
overlay whose header names its parent's file by path; in the copy, that name is changed to the
parent's copy in the copy pool (the header's backing file name, in the image's first cluster), so a
copied chain reads as one on its own host. Every byte read is checksummed against the catalogue,
and the file as written is read back on the copy host and checksummed again.
"""
from __future__ import annotations

import re
import struct
import time
import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass, replace

import libvirt

from virt.backup import (BACKUP_FORMAT, CHECKPOINT_PREFIX, RestoredDisk, active_pool, plan_restored_disks,
                         remove_volumes, require_flat_copy, require_restorable, writable_disks)
from virt.checksums import DEFAULT_ALGORITHM, algorithm_of, labelled, new_hasher, volume_checksum, volume_matches
from virt.clone import make_distinct
from virt.domains import find_disk_volume, is_running
from virt.errors import AlreadyExists, InvalidArgument, OperationInvalid, lookup_or_none, raises_typed, tolerating
from virt.storage import QCOW2_COMPAT, pool_volume_create
from virt.streams import VolumeDownload, VolumeUpload
from virt.volumes import flush_to_disk, require_free_domain_name
from virt.xml.domain import Disk
from virt.xml.domain import Domain as DomainXML
from virt.xml.storage import PoolXML, VolumeXML

Progress = Callable[[int, str], None]
_QCOW_MAGIC = b"QFI\xfb"
TEMPORARY_PREFIX = "vmsite-restore-tmp-"


def scratch_prefix(tag: str) -> str:
    """What the names of the temporary flat copies of the work tagged `tag` (its operation) start
    with: what virt.backup.remove_scratch removes after a worker died midway."""
    return f"{TEMPORARY_PREFIX}{tag}-"


@dataclass(frozen=True)
class CopiedFile:
    volume: str
    path: str
    size: int
    checksum: str  # of the file as written (differs from the source's when its backing name was changed)


# ---------------------------------------------------------------------------------------------
# A qcow2 header's backing file name


def with_backing_name(header: bytes, backing: str) -> bytes:
    """The first bytes of a qcow2 image (at least its first cluster) with its backing file name
    replaced by `backing`, in place: qemu writes the name last in the first cluster, after the header
    and its extensions, and leaves the rest of that cluster empty. An image naming no backing file,
    or a name that would not fit in the first cluster, is refused."""
    if len(header) < 24 or header[:4] != _QCOW_MAGIC:
        raise OperationInvalid("The backup file is not a qcow2 image: its backing file cannot be named anew.")
    offset, size, cluster_bits = struct.unpack_from(">QII", header, 8)
    if not offset or not size:
        raise OperationInvalid("The backup file names no backing file, where its chain has one.")
    name = backing.encode()
    end = max(offset + size, offset + len(name))
    if end > min(1 << cluster_bits, len(header)):
        raise OperationInvalid(f"The backing file name {backing!r} does not fit in the image's first cluster.")
    changed = bytearray(header)
    changed[offset:offset + size] = bytes(size)
    changed[offset:offset + len(name)] = name
    struct.pack_into(">I", changed, 16, len(name))
    return bytes(changed)


# ---------------------------------------------------------------------------------------------
# Copying one file between hosts


def pool_uuid(conn: libvirt.virConnect, pool_name: str) -> str:
    return active_pool(conn, pool_name).UUIDString()


@raises_typed
def copy_file(*, source_conn: libvirt.virConnect, source_uri: str, source_pool: str, name: str,
              target_conn: libvirt.virConnect, target_uri: str, target_pool: str, target_name: str | None = None,
              expected_checksum: str | None, backing: str | None = None,
              progress: Callable[[int, int], None] = lambda done, total: None) -> CopiedFile:
    """Copy a volume of source_pool (on one host) into target_pool (on another) as target_name, its
    bytes streamed through vmsite. expected_checksum: what the bytes read must hash to (the
    catalogue's, with its algorithm; None: no record, as for a temporary flat copy). backing: the
    backing file name the copy's qcow2 header gets (None: unchanged). The copy is read back on its
    host and must hash to what was sent. On any failure the copy is removed."""
    target_name = target_name or name
    destination = active_pool(target_conn, target_pool)
    if lookup_or_none(destination.storageVolLookupByName, target_name) is not None:
        raise AlreadyExists(f"The pool {target_pool!r} already has a volume named {target_name!r}.")
    download = VolumeDownload(source_uri, pool_uuid(source_conn, source_pool), name)
    upload = None
    made = None
    try:
        made = pool_volume_create(destination, name=target_name, capacity=download.length, allocation=0, fmt="raw")
        upload = VolumeUpload(target_uri, destination.UUIDString(), target_name, download.length,
                              checksum_algorithm=DEFAULT_ALGORITHM)
        read_algorithm = algorithm_of(expected_checksum) if expected_checksum is not None else None
        read_hasher = new_hasher(read_algorithm) if read_algorithm is not None else None
        first = True
        for chunk in download.chunks():
            if read_hasher is not None:
                read_hasher.update(chunk)
            if first and backing is not None:
                chunk = with_backing_name(chunk, backing)
            first = False
            progress(upload.write(chunk), download.length)
        written = labelled(DEFAULT_ALGORITHM, upload.finish())
        upload = None
        if read_hasher is not None and labelled(read_algorithm, read_hasher.hexdigest()) != expected_checksum:
            raise OperationInvalid(f"The backup file {name} does not have the checksum recorded when it was written: "
                                   "it is damaged. Nothing was copied.")
        destination.refresh(0)
        copied = destination.storageVolLookupByName(target_name)
        flush_to_disk(target_conn, copied)
        if not volume_matches(target_conn, copied, written):
            raise OperationInvalid(f"The copy of {name} on the other host does not read back as what was sent.")
        return CopiedFile(volume=target_name, path=copied.path(), size=download.length, checksum=written)
    except BaseException:
        download.close()
        if upload is not None:
            upload.abort()
        if made is not None:
            _delete_quietly(destination, target_name)
        raise


def _delete_quietly(pool: libvirt.virStoragePool, name: str) -> None:
    with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_OPERATION_INVALID):
        pool.refresh(0)
        pool.storageVolLookupByName(name).delete(0)


@raises_typed
def pool_path(conn: libvirt.virConnect, pool_name: str) -> str:
    """The folder of a file pool (where a copied chain's files name each other)."""
    path = PoolXML.from_libvirt(active_pool(conn, pool_name).XMLDesc(0)).target_path
    if not path:
        raise OperationInvalid(f"The pool {pool_name!r} has no folder: backups go into dir, fs or netfs pools.")
    return path


# ---------------------------------------------------------------------------------------------
# A flat copy of a chain, made next to it and moved to another host


@dataclass(frozen=True)
class HostEnd:
    """One end of a transfer: a host's connection, the URI a private stream connection opens, a pool."""

    conn: libvirt.virConnect
    uri: str
    pool: str


@raises_typed
def flat_copy_to(source: HostEnd, target: HostEnd, *, top: str, name: str, tag: str, fmt: str = BACKUP_FORMAT,
                 progress: Callable[[int, int], None] = lambda done, total: None) -> CopiedFile:
    """The disk a chain's top file reads as, flattened by libvirt into a temporary volume beside it
    (in the source pool, named from scratch_prefix(tag)), checked to be flat, streamed into the
    target pool as `name`, checked there, and the temporary volume removed. fmt: qcow2, or the
    format of a disk restored in place."""
    pool = active_pool(source.conn, source.pool)
    top_volume = pool.storageVolLookupByName(top)
    temporary = f"{scratch_prefix(tag)}{uuid_module.uuid4().hex[:8]}-{name}"
    spec = VolumeXML.new()
    spec.name = temporary
    spec.capacity = top_volume.info()[1]
    spec.format = fmt
    if fmt == "qcow2":
        spec.compat = QCOW2_COMPAT
    flat = pool.createXMLFrom(spec.to_xml(), top_volume, 0)
    try:
        if fmt == BACKUP_FORMAT:
            require_flat_copy(source.conn, flat, capacity=spec.capacity)
        return copy_file(source_conn=source.conn, source_uri=source.uri, source_pool=source.pool, name=temporary,
                         target_conn=target.conn, target_uri=target.uri, target_pool=target.pool, target_name=name,
                         expected_checksum=volume_checksum(source.conn, flat), progress=progress)
    finally:
        with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL):
            flat.delete(0)


# ---------------------------------------------------------------------------------------------
# Restoring onto another host


def definition_networks(domain_xml: str) -> list[tuple[str, str]]:
    """(type, name) of each NIC's network or bridge in a saved definition: what the VM's new host must have."""
    xml = DomainXML.from_xml(domain_xml)
    return [(nic.type, nic.source) for nic in xml.interfaces if nic.type in ("network", "bridge") and nic.source]


@raises_typed
def missing_networks(conn: libvirt.virConnect, domain_xml: str) -> list[str]:
    """The networks and bridges the definition names that the host lacks, in words."""
    networks = {network.name(): network for network in conn.listAllNetworks(0)}
    bridges = set()
    for network in networks.values():
        with tolerating(libvirt.VIR_ERR_NO_NETWORK, libvirt.VIR_ERR_OPERATION_INVALID,
                        libvirt.VIR_ERR_INTERNAL_ERROR):
            bridges.add(network.bridgeName())
    missing = []
    for kind, name in definition_networks(domain_xml):
        if (kind == "network" and name not in networks) or (kind == "bridge" and name not in bridges):
            missing.append(f"{kind} {name}")
    return missing


def _rewire(xml: DomainXML, network: str | None) -> None:
    """Every NIC on `network` (a libvirt network of the new host), when one was chosen."""
    if network is None:
        return
    for nic in xml.interfaces:
        for source in nic.element.findall("source"):
            nic.element.remove(source)
        nic.type = "network"
        nic.source_network = network


@raises_typed
def restore_on_other_host(source: HostEnd, target: HostEnd, *, domain_xml: str, tops: dict[str, str], new_name: str,
                          progress: Progress, tag: str, untrusted: bool = False, emulator: str | None = None,
                          network: str | None = None,
                          before_making: Callable[[list[str]], None] = lambda names: None,
                          ) -> tuple[str, list[RestoredDisk]]:
    """Define a new VM on the target host from a restore point whose (verified) chains are in the
    source pool: each disk flattened beside its chain, streamed into the target pool, checked there.
    A NIC on a network or bridge the target host lacks is refused unless `network` (one of the
    target's) is chosen for every NIC. before_making gets the names of the target pool's volumes it is
    about to make, all free (none is made before it returns). Returns the new VM's UUID and disks; on
    failure, none is left."""
    require_free_domain_name(target.conn, new_name)
    xml = DomainXML.from_xml(domain_xml) if untrusted else DomainXML.from_libvirt(domain_xml)
    _rewire(xml, network)
    missing = missing_networks(target.conn, xml.to_xml())
    if missing:
        raise InvalidArgument(f"The new host has no {', '.join(missing)}, which the VM's network cards use: choose "
                              "a network of that host for them. Nothing was restored.")
    planned = plan_restored_disks(xml, tops, new_name, pool_path(target.conn, target.pool))
    make_distinct(xml, new_name)
    for graphics in xml.graphics:
        graphics.listen_address = None  # an address of the old host: the new host's default instead
    if untrusted:
        require_restorable(target.conn, xml, emulator)
    restored: list[RestoredDisk] = []
    destination = active_pool(target.conn, target.pool)
    taken = [name for _, name, _ in planned if lookup_or_none(destination.storageVolLookupByName, name) is not None]
    if taken:
        raise AlreadyExists(f"The pool {target.pool!r} already has a volume named {taken[0]!r}. Nothing was restored.")
    before_making([name for _, name, _ in planned])
    try:
        for index, (disk_target, name, path) in enumerate(planned):
            step = 10 + 75 * index // len(planned)
            progress(step, f"Copying {disk_target} to the new host's pool {target.pool}")
            copied = flat_copy_to(source, target, top=tops[disk_target], name=name, tag=tag)
            if copied.path != path:
                raise OperationInvalid(f"The pool {target.pool!r} put {name} at {copied.path}, not at {path}.")
            restored.append(RestoredDisk(target=disk_target, volume=name, path=path,
                                         key=destination.storageVolLookupByName(name).key()))
        progress(88, f"Defining {new_name}")
        new = target.conn.defineXML(xml.to_xml())
    except BaseException:
        for disk in restored:
            _delete_quietly(destination, disk.volume)
        raise
    return new.UUIDString(), restored


# ---------------------------------------------------------------------------------------------
# Restoring in place, and one disk attached to a running VM


def _flat_into(source: HostEnd, target: HostEnd, *, same_host: bool, top: str, name: str, fmt: str, tag: str,
               capacity: int | None = None) -> libvirt.virStorageVol:
    """The chain's top file, flattened, as volume `name` of the target pool (made there directly by
    libvirt on the same host, streamed from a flat copy beside the chain otherwise)."""
    destination = active_pool(target.conn, target.pool)
    if same_host:
        top_volume = active_pool(source.conn, source.pool).storageVolLookupByName(top)
        spec = VolumeXML.new()
        spec.name = name
        spec.capacity = capacity or top_volume.info()[1]
        spec.format = fmt
        if fmt == "qcow2":
            spec.compat = QCOW2_COMPAT
        made = destination.createXMLFrom(spec.to_xml(), top_volume, 0)
        try:
            flush_to_disk(target.conn, made)
            if fmt == BACKUP_FORMAT:
                require_flat_copy(target.conn, made, capacity=spec.capacity)
        except BaseException:
            with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL):
                made.delete(0)
            raise
        return made
    flat_copy_to(source, target, top=top, name=name, fmt=fmt, tag=tag)
    destination.refresh(0)
    return destination.storageVolLookupByName(name)


@dataclass(frozen=True)
class DiskSwap:
    """One disk of a restore in place: the volume the VM's definition names now (old), the volume the
    point is copied into beside it (new, named from the operation), their pool and format."""

    disk: str  # the disk's target (vda)
    pool: str
    old: str
    new: str
    format: str
    key: str = ""  # the new volume's, once it is made


_RESTORED_SUFFIX = re.compile(r"-restored-op\d+$")


def replacement_name(old: str, tag: str) -> str:
    """The name of a disk's restored volume: data.qcow2 -> data-restored-op7.qcow2 (and not
    data-restored-op3-restored-op7.qcow2 when it had been restored before)."""
    stem, dot, extension = old.rpartition(".") if "." in old.lstrip(".") else (old, "", "")
    return f"{_RESTORED_SUFFIX.sub('', stem)}-restored-{tag}{dot}{extension}"


@raises_typed
def restore_in_place(source: HostEnd, target_conn: libvirt.virConnect, target_uri: str, domain: libvirt.virDomain, *,
                     tops: dict[str, str], same_host: bool, progress: Progress, tag: str,
                     before_making: Callable[[list[DiskSwap]], None] = lambda swaps: None) -> list[DiskSwap]:
    """Restore a shut-off VM's disks (each a pool volume) from the restore point's chains: each is
    copied into a new volume of the disk's pool and format (replacement_name), and only once all are
    complete is the VM's definition switched to them, in one define; then the old volumes are deleted
    and its vmsite checkpoints forgotten (their bitmaps went with the old files). Until the switch the
    VM has its old disks, whole. before_making gets the swaps before any new volume is made (their
    names are all free). Returns the swaps, with the new volumes' keys."""
    if is_running(domain):
        raise OperationInvalid("The VM is running: shut it off before restoring its disks in place. Nothing was "
                               "restored.")
    xml = DomainXML.from_libvirt(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
    swaps = _planned_swaps(target_conn, xml, tops, tag)
    before_making(swaps)
    made: list[DiskSwap] = []
    try:
        for index, swap in enumerate(swaps):
            progress(20 + 60 * index // len(swaps), f"Copying {swap.disk} into {swap.new} in {swap.pool}")
            volume = _flat_into(source, HostEnd(target_conn, target_uri, swap.pool), same_host=same_host,
                                top=tops[swap.disk], name=swap.new, fmt=swap.format, tag=tag)
            made.append(replace(swap, key=volume.key()))
        progress(85, f"Switching {domain.name()} to its restored disks")
        _switch_disks(target_conn, xml, made)
    except BaseException:
        for swap in swaps:
            _delete_quietly(active_pool(target_conn, swap.pool), swap.new)
        raise
    progress(92, "Deleting the old disks")
    forget_checkpoints(domain)
    for swap in made:
        _delete_quietly(active_pool(target_conn, swap.pool), swap.old)
    return made


def _planned_swaps(conn: libvirt.virConnect, xml: DomainXML, tops: dict[str, str], tag: str) -> list[DiskSwap]:
    disks = {disk.target_dev: disk for disk in writable_disks(xml)}
    absent = sorted(set(tops) - set(disks))
    if absent:
        raise OperationInvalid(f"The VM has no disk {', '.join(absent)} any more: restore the backup as a new VM "
                               "instead. Nothing was restored.")
    swaps = []
    for target in sorted(tops):
        volume = find_disk_volume(conn, disks[target].source)
        if volume is None:
            raise OperationInvalid(f"Disk {target} ({disks[target].source}) is not a volume of a storage pool: "
                                   "vmsite restores only into pool volumes. Nothing was restored.")
        pool = volume.storagePoolLookupByVolume()
        new = replacement_name(volume.name(), tag)
        if lookup_or_none(pool.storageVolLookupByName, new) is not None:
            raise AlreadyExists(f"The pool {pool.name()!r} already has a volume named {new!r}. Nothing was restored.")
        swaps.append(DiskSwap(disk=target, pool=pool.name(), old=volume.name(), new=new,
                              format=VolumeXML.from_libvirt(volume.XMLDesc(0)).format or "raw"))
    return swaps


def _switch_disks(conn: libvirt.virConnect, xml: DomainXML, swaps: list[DiskSwap]) -> None:
    """Point each swapped disk of the definition at its new volume, and define it (all disks at once)."""
    by_target = {disk.target_dev: disk for disk in xml.disks}
    for swap in swaps:
        disk = by_target[swap.disk]
        path = active_pool(conn, swap.pool).storageVolLookupByName(swap.new).path()
        if disk.type == "volume":
            disk.source_volume = swap.new
        elif disk.type == "block":
            disk.source_dev = path
        else:
            disk.source_file = path
        for backing in disk.element.findall("backingStore"):  # the old image's; the new one is flat
            disk.element.remove(backing)
    conn.defineXML(xml.to_xml())


@raises_typed
def settle_swaps(conn: libvirt.virConnect, *, domain_uuid: str, swaps: list[DiskSwap]) -> list[str]:
    """What a restore in place whose worker died left: when the VM's definition names the new volumes
    (it was switched, all disks at once), the old volumes go and its vmsite checkpoints are forgotten;
    otherwise the new volumes (whole or half-written) go and the VM keeps its old disks. What went."""
    if not swaps:
        return []
    domain = lookup_or_none(conn.lookupByUUIDString, domain_uuid)
    switched = domain is not None and _names_new_volumes(conn, domain, swaps)
    gone = []
    for swap in swaps:
        gone += remove_volumes(conn, pool_name=swap.pool, names=[swap.old if switched else swap.new])
    if switched:
        dropped = forget_checkpoints(domain)
        gone += [f"{dropped} checkpoint(s) of the old disks"] if dropped else []
    return gone


def _names_new_volumes(conn: libvirt.virConnect, domain: libvirt.virDomain, swaps: list[DiskSwap]) -> bool:
    disks = {disk.target_dev: disk for disk in DomainXML.from_libvirt(
        domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).disks}
    swap = swaps[0]  # the switch is one define: one disk tells
    disk = disks.get(swap.disk)
    volume = find_disk_volume(conn, disk.source) if disk is not None and disk.source else None
    return volume is not None and volume.name() == swap.new and volume.storagePoolLookupByVolume().name() == swap.pool


def forget_checkpoints(domain: libvirt.virDomain) -> int:
    """Drop the metadata of vmsite's checkpoints of a VM whose disks were replaced (their bitmaps are gone)."""
    dropped = 0
    for checkpoint in domain.listAllCheckpoints(libvirt.VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL)[::-1]:
        if checkpoint.getName().startswith(CHECKPOINT_PREFIX):
            with tolerating(libvirt.VIR_ERR_NO_DOMAIN_CHECKPOINT):
                checkpoint.delete(libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)
            dropped += 1
    return dropped


@dataclass(frozen=True)
class AttachedDisk:
    target: str  # the device name in the VM (vdX)
    volume: str
    key: str


@raises_typed
def attach_point_disk(source: HostEnd, target: HostEnd, domain: libvirt.virDomain, *, top: str, name: str,
                      same_host: bool, progress: Progress, tag: str,
                      before_making: Callable[[list[str]], None] = lambda names: None) -> AttachedDisk:
    """One disk of a restore point, flattened into a new qcow2 volume of the target pool (on the VM's
    host), hot-plugged into the running VM read-only as the next free virtio disk, to copy files from.
    before_making gets [name] once it is known to be free, before the volume is made."""
    if not is_running(domain):
        raise OperationInvalid("The VM is not running: a backup's disk is attached to a running VM.")
    if lookup_or_none(active_pool(target.conn, target.pool).storageVolLookupByName, name) is not None:
        raise AlreadyExists(f"The pool {target.pool!r} already has a volume named {name!r}: detach that backup "
                            "disk first. Nothing was attached.")
    before_making([name])
    progress(10, f"Copying the disk into {target.pool}")
    volume = _flat_into(source, target, same_host=same_host, top=top, name=name, fmt=BACKUP_FORMAT, tag=tag)
    try:
        xml = DomainXML.from_libvirt(domain.XMLDesc(0))
        used = {disk.target_dev for disk in xml.disks}
        device = next(f"vd{letter}" for letter in "bcdefghijklmnopqrstuvwxyz" if f"vd{letter}" not in used)
        disk = Disk.new()
        disk.type, disk.device = "file", "disk"
        disk.driver_name, disk.driver_type = "qemu", BACKUP_FORMAT
        disk.source_file = volume.path()
        disk.target_dev, disk.target_bus = device, "virtio"
        disk.readonly = True
        progress(80, f"Attaching it as {device}, read-only")
        domain.attachDeviceFlags(disk.to_xml(), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except BaseException:
        with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL):
            volume.delete(0)
        raise
    return AttachedDisk(target=device, volume=name, key=volume.key())


@raises_typed
def undo_attach(conn: libvirt.virConnect, *, domain_uuid: str, pool_name: str, volume: str) -> list[str]:
    """What an attach whose worker died left: its volume (whole or half-copied) deleted, unplugged
    from the VM first if the attach had got that far. What went, in words."""
    domain = lookup_or_none(conn.lookupByUUIDString, domain_uuid)
    pool = lookup_or_none(conn.storagePoolLookupByName, pool_name)
    handle = lookup_or_none(pool.storageVolLookupByName, volume) if pool is not None else None
    device = None
    if domain is not None and handle is not None and is_running(domain):
        path = handle.path()
        device = next((disk.target_dev for disk in DomainXML.from_libvirt(domain.XMLDesc(0)).disks
                       if disk.source == path), None)
    if device is None:
        return remove_volumes(conn, pool_name=pool_name, names=[volume])
    detach_point_disk(conn, domain, device=device, pool=pool_name, volume=volume)
    return [f"{device} unplugged", f"volume {volume}"]


@raises_typed
def detach_point_disk(conn: libvirt.virConnect, domain: libvirt.virDomain, *, device: str, pool: str, volume: str,
                      timeout: float = 30) -> None:
    """Unplug the attached backup disk (when the VM still has it) and delete its volume."""
    xml = DomainXML.from_libvirt(domain.XMLDesc(0))
    attached = next((disk for disk in xml.disks if disk.target_dev == device), None)
    if attached is not None and is_running(domain):
        domain.detachDeviceFlags(attached.to_xml(), libvirt.VIR_DOMAIN_AFFECT_LIVE)
        deadline = time.monotonic() + timeout
        while any(disk.target_dev == device for disk in DomainXML.from_libvirt(domain.XMLDesc(0)).disks):
            if time.monotonic() > deadline:
                raise OperationInvalid(f"The guest did not release {device} within {timeout:.0f} s: try again once "
                                       "it has (unmount it inside first).")
            time.sleep(0.2)
    pool_handle = lookup_or_none(conn.storagePoolLookupByName, pool)
    if pool_handle is not None:
        _delete_quietly(pool_handle, volume)
