"""Worker side of every use of a pool volume as a disk (attach, CD-ROM, wizard, clone): the format
comes from vmsite's record, the header is read with that format and refused when it reaches
outside its pool, and a volume another VM uses is refused unless an administrator marked it
shareable."""
from __future__ import annotations

import dataclasses

from hosts.models import Host
from storage.models import VolumeRecord
from storage.records import volume_record_seen
from virt import images
from virt import storage as virt_storage
from virt.devices import PoolVolume, disk_format, find_pool_volume
from virt.errors import OperationInvalid
from virt.types import Connection, VolumeHandle
from virt.volumes import volume_format, volume_key, volume_label


def vetted_volume(conn: Connection, *, host: Host, pool_name: str, volume_name: str
                  ) -> tuple[PoolVolume, VolumeRecord]:
    """The volume as a disk may use it: with its recorded format, its header checked."""
    volume = find_pool_volume(conn, pool_name=pool_name, volume_name=volume_name)
    record = volume_record_seen(host=host, key=volume.key, seen_format=volume.format)
    fmt = disk_format(record.format)
    images.require_contained(conn, volume.handle, fmt=fmt, label=volume.label,
                             pool_path=images.pool_path_of(volume.handle))
    return dataclasses.replace(volume, format=fmt), record


def vetted_copy_format(conn: Connection, *, host: Host, volume: VolumeHandle) -> str:
    """The format to copy a volume in: its record. libvirt reads a copy's source in the format it
    probes, so a volume whose contents now look like another format is refused too."""
    reported = volume_format(volume)
    record = volume_record_seen(host=host, key=volume_key(volume), seen_format=reported)
    label = volume_label(volume)
    images.require_contained(conn, volume, fmt=disk_format(record.format), label=label,
                             pool_path=images.pool_path_of(volume))
    if reported != record.format:
        raise OperationInvalid(f"{label} was recorded as a {record.format} volume, but its contents now read as "
                               f"{reported}: libvirt would copy it as {reported}, so vmsite does not copy it. "
                               "Nothing was copied.")
    return record.format


def sharing(conn: Connection, *, volume: PoolVolume, record: VolumeRecord, domain_uuid: str, readonly: bool) -> bool:
    """Whether the disk must be <shareable/>: refuses a volume another VM uses unless it is shareable
    (and then a non-raw image only read-only: two writers would corrupt it)."""
    others = sorted({user.domain_name for user in virt_storage.volume_users(conn, volume.handle)
                     if user.domain_uuid != domain_uuid})
    if not others:
        return False
    names = ", ".join(others)
    if not record.shareable:
        raise OperationInvalid(f"{volume.label} is in use by {names}: a volume is on one VM at a time unless an "
                               "administrator marks it shareable. Nothing was attached.")
    if volume.format != "raw" and not readonly:
        raise OperationInvalid(f"{volume.label} is a {volume.format} image in use by {names}: a second VM may attach "
                               "it read-only only. Nothing was attached.")
    return True
