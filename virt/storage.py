"""Storage pools and volumes: lifecycle, volume work, and what uses a volume.

Pools and volumes are found by what the database keeps (a pool's UUID, a volume's pool and name);
a path typed by a user never reaches libvirt.
"""
from __future__ import annotations

import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import libvirt

from virt.errors import (AlreadyExists, InvalidArgument, NotFound, OperationInvalid, lookup_or_none, raises_typed,
                         tolerating, translated)
from virt.volumes import volume_of_active_pool
from virt.xml.domain import summarize_domain
from virt.xml.storage import QCOW2_COMPAT, PoolSource, PoolSourceList, PoolXML, VolumeXML

Progress = Callable[[int, str], None]


@dataclass(frozen=True)
class PoolSummary:
    uuid: uuid_module.UUID
    name: str
    pool_type: str
    target_path: str
    active: bool
    autostart: bool
    capacity: int
    allocation: int
    available: int
    details: dict = field(default_factory=dict, compare=False)  # source host, folder, devices, VG


class VolumeSummary(NamedTuple):
    pool_uuid: uuid_module.UUID
    key: str
    name: str
    path: str
    vol_type: str
    format: str
    capacity: int
    allocation: int
    backing_path: str


class VolumeUser(NamedTuple):
    domain_uuid: str
    domain_name: str
    target_dev: str
    running: bool


# ---------------------------------------------------------------------------------------------
# Reading


@raises_typed
def lookup_pool(conn: libvirt.virConnect, uuid: str) -> libvirt.virStoragePool:
    pool = lookup_or_none(conn.storagePoolLookupByUUIDString, uuid)
    if pool is None:
        raise NotFound(f"The storage pool {uuid} no longer exists on this host.",
                       code=libvirt.VIR_ERR_NO_STORAGE_POOL)
    return pool


@raises_typed
def lookup_volume(conn: libvirt.virConnect, pool_uuid: str, name: str) -> libvirt.virStorageVol:
    return volume_of_active_pool(lookup_pool(conn, pool_uuid), name)


@raises_typed
def list_pools(conn: libvirt.virConnect) -> list[PoolSummary]:
    """Storage pools: hosts have few, so one description per pool is fine here."""
    active = {pool.UUIDString() for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)}
    autostart = {pool.UUIDString()
                 for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART)}
    summaries = []
    for pool in conn.listAllStoragePools():
        with tolerating(libvirt.VIR_ERR_NO_STORAGE_POOL):  # undefined while we looked
            summaries.append(pool_summary(pool, active, autostart))
    return summaries


# The largest size a database's signed 64-bit column holds. libvirt reports sizes as unsigned 64-bit
# numbers; while the backups suite filled a small pool, a reconcile of that host stored a pool size
# beyond it and failed ("Python int too large to convert to SQLite INTEGER"). No real size is that
# large (8 EiB): such a number reads as 0.
MAX_SIZE = 2**63 - 1


def sane_size(value: int | None) -> int:
    """A size libvirt reported, or 0 for none or a wrapped-around one."""
    return value if value is not None and 0 <= value <= MAX_SIZE else 0


@raises_typed
def pool_summary(pool: libvirt.virStoragePool, active: set[str], autostart: set[str]) -> PoolSummary:
    document = PoolXML.from_libvirt(pool.XMLDesc(0))
    uuid = pool.UUIDString()
    _state, capacity, allocation, available = pool.info()
    return PoolSummary(
        uuid=uuid_module.UUID(uuid), name=pool.name(), pool_type=document.type or "",
        target_path=document.target_path or "", active=uuid in active, autostart=uuid in autostart,
        capacity=sane_size(capacity), allocation=sane_size(allocation), available=sane_size(available),
        details=document.summary(),
    )


@raises_typed
def refetch_pool(conn: libvirt.virConnect, uuid: str) -> tuple[PoolSummary, list[VolumeSummary]] | None:
    """One pool as libvirt has it now, with its volumes; None when it is gone."""
    with translated():
        try:
            pool = lookup_pool(conn, uuid)
        except NotFound:
            return None
        active = bool(pool.isActive())
        summary = pool_summary(pool, {uuid} if active else set(), {uuid} if pool.autostart() else set())
        return summary, list_volumes(pool) if active else []


@raises_typed
def list_all_volumes(conn: libvirt.virConnect) -> list[VolumeSummary]:
    """The volumes of every active pool of the host: per pool, one listing and one description
    per volume (libvirt has no bulk call for volumes)."""
    volumes = []
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        # a pool stopped or undefined while we looked is simply skipped
        with tolerating(libvirt.VIR_ERR_NO_STORAGE_POOL, libvirt.VIR_ERR_OPERATION_INVALID):
            volumes.extend(list_volumes(pool))
    return volumes


@raises_typed
def list_volumes(pool: libvirt.virStoragePool) -> list[VolumeSummary]:
    """The volumes of an active pool: one listing plus one description each."""
    pool_uuid = uuid_module.UUID(pool.UUIDString())
    volumes = []
    for volume in pool.listAllVolumes(0):
        with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL):  # deleted while we looked
            volumes.append(volume_summary(pool_uuid, volume))
    return volumes


@raises_typed
def volume_summary(pool_uuid: uuid_module.UUID, volume: libvirt.virStorageVol) -> VolumeSummary:
    xml = VolumeXML.from_libvirt(volume.XMLDesc(0))
    return VolumeSummary(pool_uuid=pool_uuid, key=xml.key or volume.key(), name=xml.name or volume.name(),
                         path=xml.path or "", vol_type=xml.type or "file", format=xml.format or "raw",
                         capacity=sane_size(xml.capacity), allocation=sane_size(xml.allocation),
                         backing_path=xml.backing_path or "")


@raises_typed
def volume_users(conn: libvirt.virConnect, volume: libvirt.virStorageVol) -> list[VolumeUser]:
    """The VMs (defined or running) whose disks point at the volume, by path or pool/name."""
    pool_name = volume.storagePoolLookupByVolume().name()
    names = {volume.path(), f"{pool_name}/{volume.name()}"}
    users = []
    for domain in conn.listAllDomains(0):
        described = lookup_or_none(_live_and_inactive_xml, domain, missing=(libvirt.VIR_ERR_NO_DOMAIN,))
        if described is None:
            continue  # gone since the listing
        xml, inactive = described
        disks = {disk.target: disk for text in (xml, inactive) for disk in summarize_domain(text).disks}
        users.extend(VolumeUser(domain.UUIDString(), domain.name(), target, bool(domain.isActive()))
                     for target, disk in disks.items() if disk.source in names)
    return users


def _live_and_inactive_xml(domain: libvirt.virDomain) -> tuple[str, str]:
    xml = domain.XMLDesc(0)
    return xml, domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) if domain.isPersistent() else xml


# ---------------------------------------------------------------------------------------------
# Pools


@raises_typed
def define_pool(conn: libvirt.virConnect, xml: PoolXML) -> str:
    """Define a persistent pool; returns its UUID."""
    if lookup_or_none(conn.storagePoolLookupByName, xml.name) is not None:
        raise AlreadyExists(f"The host already has a storage pool named {xml.name!r}.")
    return conn.storagePoolDefineXML(xml.to_xml(), 0).UUIDString()


@raises_typed
def build_pool(pool: libvirt.virStoragePool, *, overwrite: bool = False) -> str:
    """Make the pool's storage: its folder, a volume group on its devices, a partition table."""
    if pool.isActive():
        raise OperationInvalid("Stop the pool before building it.")
    pool.build(libvirt.VIR_STORAGE_POOL_BUILD_OVERWRITE if overwrite else libvirt.VIR_STORAGE_POOL_BUILD_NEW)
    return "Built"


@raises_typed
def start_pool(pool: libvirt.virStoragePool) -> str:
    if pool.isActive():
        return "Already active"
    pool.create(0)
    return "Started"


@raises_typed
def stop_pool(pool: libvirt.virStoragePool) -> str:
    if not pool.isActive():
        return "Already inactive"
    pool.destroy()
    return "Stopped"


@raises_typed
def set_pool_autostart(pool: libvirt.virStoragePool, *, enabled: bool) -> str:
    pool.setAutostart(1 if enabled else 0)
    return "Autostart on" if enabled else "Autostart off"


@raises_typed
def refresh_pool(pool: libvirt.virStoragePool) -> str:
    if not pool.isActive():
        raise OperationInvalid("Start the pool before refreshing it.")
    pool.refresh(0)
    return "Refreshed"


@raises_typed
def undefine_pool(pool: libvirt.virStoragePool) -> str:
    """Forget the pool's definition; its storage and volumes stay where they are."""
    if pool.isActive():
        pool.destroy()
    if pool.isPersistent():
        pool.undefine()
    return "Undefined (the storage itself is kept)"


@raises_typed
def delete_pool(pool: libvirt.virStoragePool) -> str:
    """Destroy the pool's storage (an empty folder, a volume group), then forget it."""
    if pool.isActive():
        if pool.numOfVolumes():
            raise OperationInvalid(f"The pool still has {pool.numOfVolumes()} volume(s): delete them first.")
        pool.destroy()
    pool.delete(libvirt.VIR_STORAGE_POOL_DELETE_NORMAL)
    if pool.isPersistent():
        pool.undefine()
    return "Deleted with its storage"


@raises_typed
def find_pool_sources(conn: libvirt.virConnect, pool_type: str, host: str) -> list[dict]:
    """What a server offers: NFS exports (netfs) or iSCSI targets (iscsi), by libvirt's discovery."""
    query = PoolSource.new()
    query.host = host
    answer = PoolSourceList.from_libvirt(conn.findStoragePoolSources(pool_type, query.to_xml(), 0))
    return [{"host": source.host or host, "dir": source.dir or "", "device": (source.devices or [""])[0]}
            for source in answer.sources]


# ---------------------------------------------------------------------------------------------
# Volumes


@raises_typed
def pool_volume_create(pool: libvirt.virStoragePool, *, name: str, capacity: int, allocation: int | None,
                       fmt: str | None, backing: libvirt.virStorageVol | None = None) -> libvirt.virStorageVol:
    """A volume in a pool handle, as the storage app makes it (allocation, backing file).
    fmt None: the pool's own kind of volume (a logical volume, a partition)."""
    if not pool.isActive():
        raise OperationInvalid(f"The storage pool {pool.name()!r} is not active: start it first.")
    if name in pool.listVolumes():
        raise AlreadyExists(f"The pool {pool.name()!r} already has a volume named {name!r}.")
    xml = VolumeXML.new()
    xml.name = name
    xml.capacity = capacity
    if allocation is not None:
        xml.allocation = allocation
    if fmt is not None:
        xml.format = fmt
    if fmt == "qcow2":
        xml.compat = QCOW2_COMPAT
    if backing is not None:
        xml.backing_path = backing.path()
        xml.backing_format = VolumeXML.from_libvirt(backing.XMLDesc(0)).format or "raw"
    return pool.createXML(xml.to_xml(), 0)


@raises_typed
def resize_volume(volume: libvirt.virStorageVol, *, capacity: int, shrink: bool) -> str:
    _type, current, _allocation = volume.info()
    if capacity == current:
        return "Size unchanged"
    if capacity < current and not shrink:
        raise InvalidArgument("The new size is smaller than the volume: tick 'shrink' to allow losing its end.")
    volume.resize(capacity, libvirt.VIR_STORAGE_VOL_RESIZE_SHRINK if capacity < current else 0)
    return f"Resized to {capacity} bytes"


@raises_typed
def wipe_volume(volume: libvirt.virStorageVol) -> str:
    volume.wipe(0)
    return "Wiped (filled with zeros)"


@raises_typed
def delete_volume(volume: libvirt.virStorageVol) -> str:
    with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL):
        volume.delete(0)
    return "Deleted"


@raises_typed
def volume_pool_uuid(volume: libvirt.virStorageVol) -> str:
    return volume.storagePoolLookupByVolume().UUIDString()
