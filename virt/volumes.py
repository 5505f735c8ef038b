"""Storage volumes: the few calls VM creation needs (create, find, upload small data, delete)."""
from __future__ import annotations

import os

import libvirt

from virt.checksums import local_file
from virt.errors import AlreadyExists, NotFound, OperationInvalid, lookup_or_none, raises_typed, tolerating
from virt.xml.storage import QCOW2_COMPAT, VolumeXML


@raises_typed
def find_volume(conn: libvirt.virConnect, pool_name: str, volume_name: str) -> libvirt.virStorageVol:
    """A volume of one of the host's pools, by name: a path is never taken from a user."""
    pool = lookup_or_none(conn.storagePoolLookupByName, pool_name)
    if pool is None:
        raise NotFound(f"The storage pool {pool_name!r} does not exist on this host.",
                       code=libvirt.VIR_ERR_NO_STORAGE_POOL)
    return volume_of_active_pool(pool, volume_name, refresh=True)


@raises_typed
def volume_of_active_pool(pool: libvirt.virStoragePool, name: str, *, refresh: bool = False) -> libvirt.virStorageVol:
    """A volume of a started pool, by name (refresh: first look for volumes made outside libvirt)."""
    if not pool.isActive():
        raise OperationInvalid(f"The storage pool {pool.name()!r} is not active: start it first.")
    if refresh:
        pool.refresh(0)
    volume = lookup_or_none(pool.storageVolLookupByName, name)
    if volume is None:
        raise NotFound(f"The pool {pool.name()!r} has no volume named {name!r}.", code=libvirt.VIR_ERR_NO_STORAGE_VOL)
    return volume


@raises_typed
def guest_volume_create(conn: libvirt.virConnect, pool_name: str, volume_name: str, *, capacity_bytes: int,
                        fmt: str) -> libvirt.virStorageVol:
    """A fully sized volume of one format for a VM being created or given a disk, pool by name
    (`virt.storage.pool_volume_create` is the storage app's general one)."""
    pool = conn.storagePoolLookupByName(pool_name)
    if volume_name in pool.listVolumes():
        raise AlreadyExists(f"The pool {pool_name!r} already has a volume named {volume_name!r}.")
    volume = VolumeXML.new()
    volume.name = volume_name
    volume.capacity = capacity_bytes
    volume.format = fmt
    if fmt == "qcow2":  # v3 (libvirt would make v2): incremental backups keep dirty bitmaps in it
        volume.compat = QCOW2_COMPAT
    return pool.createXML(volume.to_xml(), 0)


@raises_typed
def upload_bytes(conn: libvirt.virConnect, volume: libvirt.virStorageVol, data: bytes) -> None:
    """Write data into a volume through libvirt's storage stream: works on remote hosts too."""
    stream = conn.newStream(0)
    volume.upload(stream, 0, len(data), 0)
    try:
        offset = 0
        while offset < len(data):
            offset += stream.send(data[offset:offset + 256 * 1024])
        stream.finish()
    except libvirt.libvirtError:
        stream.abort()
        raise


@raises_typed
def volume_path(volume: libvirt.virStorageVol) -> str:
    return volume.path()


@raises_typed
def volume_key(volume: libvirt.virStorageVol) -> str:
    """libvirt's identity of a volume on its host (the path, for file volumes)."""
    return volume.key()


@raises_typed
def volume_label(volume: libvirt.virStorageVol) -> str:
    return f"{volume.storagePoolLookupByVolume().name()}/{volume.name()}"


@raises_typed
def volume_format(volume: libvirt.virStorageVol) -> str:
    """The image format (qcow2, raw, ...) as the pool reports it."""
    return VolumeXML.from_libvirt(volume.XMLDesc(0)).format or "raw"


@raises_typed
def flush_to_disk(conn: libvirt.virConnect, volume: libvirt.virStorageVol) -> None:
    """The volume's file on stable storage, when the host is this machine's own libvirtd (its file
    as virt.checksums.local_file finds it). libvirt copies a volume (createXMLFrom) with qemu-img
    convert's default cache, which never flushes what it wrote, a stream upload does not flush
    either, and libvirt has no call to flush a file: on another host the copy reaches its disk when
    that kernel writes it back (30 s by default)."""
    path = local_file(conn, volume)
    if path is None:
        return
    fd = os.open(path, os.O_RDONLY)  # fdatasync writes the file's dirty pages, whoever wrote them
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


@raises_typed
def delete_volume(volume: libvirt.virStorageVol) -> None:
    with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL):
        volume.delete(0)


@raises_typed
def require_free_domain_name(conn: libvirt.virConnect, name: str) -> None:
    if lookup_or_none(conn.lookupByName, name) is not None:
        raise AlreadyExists(f"The host already has a VM named {name!r}.")
