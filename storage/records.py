"""vmsite's own record of each volume (format, owner, shareable): written when vmsite makes a volume
or first sees one, kept while the volume exists, never rewritten from what the contents say."""
from __future__ import annotations

import uuid as uuid_module
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser

from domains.models import Domain
from hosts.models import Host
from storage.models import Volume, VolumeGift, VolumeRecord


def volume_record_made(*, host: Host | int, key: str, format: str, owner_uuid: str | uuid_module.UUID | None = None,
                       cloud_init_seed: bool = False) -> VolumeRecord:
    """vmsite has just made (created, cloned, uploaded) this volume: what it chose is the record."""
    host_id = host if isinstance(host, int) else host.pk
    record, _ = VolumeRecord.objects.update_or_create(
        host_id=host_id, key=key,
        defaults={"format": format, "owner_uuid": owner_uuid, "shareable": False, "cloud_init_seed": cloud_init_seed})
    Volume.objects.filter(host_id=host_id, key=key).update(record=record)
    return record


def volume_record_seen(*, host: Host | int, key: str, seen_format: str) -> VolumeRecord:
    """The record of a volume; the format libvirt reports is taken only the first time vmsite sees it."""
    host_id = host if isinstance(host, int) else host.pk
    record, _ = VolumeRecord.objects.get_or_create(host_id=host_id, key=key, defaults={"format": seen_format})
    return record


def records_for(*, host: Host, seen: dict[str, str]) -> dict[str, int]:
    """Record ids for these keys (key -> format reported now); the missing ones are made from what
    libvirt reports now, their first sight. Two queries, whatever the number of volumes."""
    known = dict(VolumeRecord.objects.filter(host=host, key__in=list(seen)).values_list("key", "pk"))
    missing = [VolumeRecord(host=host, key=key, format=fmt) for key, fmt in seen.items() if key not in known]
    if missing:
        VolumeRecord.objects.bulk_create(missing, ignore_conflicts=True)
        known = dict(VolumeRecord.objects.filter(host=host, key__in=list(seen)).values_list("key", "pk"))
    return known


def records_forget(*, host: Host, keys: Iterable[str]) -> None:
    """The volumes are gone from their (active) pools: so is what vmsite knew of them."""
    VolumeRecord.objects.filter(host=host, key__in=list(keys)).delete()


def volume_record_of(volume: Volume) -> VolumeRecord:
    """The cached volume's record (made from what libvirt reported if sync has not linked one yet)."""
    if volume.record_id:
        return VolumeRecord.objects.get(pk=volume.record_id)
    record = volume_record_seen(host=volume.host_id, key=volume.key, seen_format=volume.format)
    Volume.objects.filter(pk=volume.pk).update(record=record)
    return record


def volume_give(*, volume: Volume, domain: Domain, user: AbstractBaseUser | None) -> VolumeGift:
    gift, _ = VolumeGift.objects.get_or_create(record=volume_record_of(volume), domain_uuid=domain.uuid,
                                               defaults={"given_by": user})
    return gift


def volume_take_back(*, volume: Volume, domain_uuid: str | uuid_module.UUID) -> None:
    VolumeGift.objects.filter(record=volume_record_of(volume), domain_uuid=domain_uuid).delete()


def volume_set_shareable(*, volume: Volume, shareable: bool) -> VolumeRecord:
    record = volume_record_of(volume)
    VolumeRecord.objects.filter(pk=record.pk).update(shareable=shareable)
    record.refresh_from_db()
    return record


def records_follow_vm(*, vm_uuid: str | uuid_module.UUID, source: Host, destination: Host) -> int:
    """A migrated VM's volumes are its own on the destination too (shared storage sees the same
    keys; a storage migration copies its disks to the same paths). Returns how many records."""
    carried = 0
    for record in VolumeRecord.objects.filter(host=source, owner_uuid=vm_uuid):
        VolumeRecord.objects.update_or_create(
            host=destination, key=record.key,
            defaults={"format": record.format, "owner_uuid": record.owner_uuid,
                      "cloud_init_seed": record.cloud_init_seed})
        carried += 1
    return carried


def records_left_behind(*, vm_uuid: str | uuid_module.UUID, host: Host, keys: Iterable[str]) -> int:
    """The source's copies of a migrated VM's disks, kept on request: they stay the VM's, so that
    the pool page can say whose copies they are (storage.selectors.left_behind)."""
    keys = list(keys)
    for key in keys:
        VolumeRecord.objects.get_or_create(host=host, key=key, defaults={"format": "raw", "owner_uuid": vm_uuid})
    return VolumeRecord.objects.filter(host=host, key__in=keys, owner_uuid__isnull=True).update(owner_uuid=vm_uuid)
