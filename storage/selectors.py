"""Reads for the storage pages, from the cached tables only."""
from __future__ import annotations

from collections import defaultdict

from django.db.models import Q, QuerySet

from domains.models import Domain
from hosts.models import Host
from storage.models import StoragePool, Volume, VolumeGift, VolumeRecord


def pool_list(*, host_id: int | None = None) -> QuerySet[StoragePool]:
    pools = StoragePool.objects.select_related("host").order_by("host__name", "name")
    return pools.filter(host_id=host_id) if host_id is not None else pools


def disk_users(host: Host) -> dict[str, list[Domain]]:
    """The host's VMs by the disk sources they name (a path, or pool/volume), from their cached XML."""
    users: dict[str, list[Domain]] = defaultdict(list)
    for domain in Domain.objects.filter(host=host).only("pk", "name", "details", "state", "host_id"):
        for disk in (domain.details or {}).get("disks", []):
            if disk.get("source") and domain not in users[disk["source"]]:
                users[disk["source"]].append(domain)
    return users


def volume_users(volume: Volume, users: dict[str, list[Domain]] | None = None) -> list[Domain]:
    users = users if users is not None else disk_users(volume.host)
    found = users.get(volume.path, []) + users.get(f"{volume.pool.name}/{volume.name}", [])
    return list(dict.fromkeys(found))


def pool_volumes(pool: StoragePool) -> list[tuple[Volume, list[Domain]]]:
    """The pool's volumes, each with the VMs that use it."""
    users = disk_users(pool.host)
    return [(volume, volume_users(volume, users)) for volume in pool.volumes.select_related("pool", "host")]


def iso_library(*, host_id: int | None = None) -> QuerySet[Volume]:
    """The ISO images of every pool, ready to be a new VM's CD-ROM."""
    volumes = (Volume.objects.filter(Q(format="iso") | Q(name__iendswith=".iso"))
               .exclude(upload_state__in=["uploading", "incomplete"])
               .select_related("pool", "host").order_by("host__name", "pool__name", "name"))
    return volumes.filter(host_id=host_id) if host_id is not None else volumes


def volume_ownership(volume: Volume, user) -> dict:
    """Who the volume belongs to and which VMs it was given to, as this user may see them: a VM
    they may not see is only "another VM"."""
    from accounts.access import VIEW, may, volume_record

    record = volume_record(volume)
    if record is None:
        return {"owner": None, "owner_hidden": False, "given": [], "given_hidden": 0}
    def visible(uuids) -> tuple[list[Domain], int]:
        rows = list(Domain.objects.filter(host_id=volume.host_id, uuid__in=list(uuids)))
        shown = [row for row in rows if may(user, VIEW, row)]
        return shown, len(set(uuids)) - len(shown)
    owners, owner_hidden = visible([record.owner_uuid] if record.owner_uuid else [])
    given, given_hidden = visible(record.gifts.values_list("domain_uuid", flat=True))
    return {"owner": owners[0] if owners else None, "owner_hidden": bool(owner_hidden), "given": given,
            "given_hidden": given_hidden}


def volume_offers(user, domain: Domain) -> list[tuple[Volume, str]]:
    """The volumes of the VM's host the user could put into this VM, each with why it is refused
    ("" when it is offered). A VM's own users see only its own and given volumes: the rest of the
    host is not theirs to see."""
    from accounts.access import OPERATE, may, volume_use_refusal

    volumes = (Volume.objects.filter(host=domain.host, pool__active=True).select_related("pool", "host", "record")
               .exclude(upload_state__in=["uploading", "incomplete"]).order_by("pool__name", "name"))
    if not may(user, OPERATE, domain.host):
        given = VolumeGift.objects.filter(domain_uuid=domain.uuid).values("record_id")
        volumes = volumes.filter(Q(record__owner_uuid=domain.uuid) | Q(record_id__in=given))
    users = disk_users(domain.host)
    return [(volume, volume_use_refusal(user, domain, volume, label=f"{volume.pool.name}/{volume.name}",
                                        used_by=volume_users(volume, users)) or "")
            for volume in volumes[:500]]


def delete_with_vm_plan(domain: Domain) -> list[tuple[str, str]]:
    """Each disk of the VM (as cached) and what "also delete its disk images" would do to it; the
    worker decides again on the host."""
    from accounts.access import volume_keys_deletable_with

    sources = [disk["source"] for disk in (domain.details or {}).get("disks", [])
               if disk.get("device") == "disk" and disk.get("source")]
    volumes = {volume.path: volume for volume in Volume.objects.filter(host=domain.host, path__in=sources)}
    users = disk_users(domain.host)
    used_elsewhere = {volume.key for source, volume in volumes.items()
                      if any(other.pk != domain.pk for other in users.get(source, []))}
    deletable = volume_keys_deletable_with(domain, used_elsewhere=used_elsewhere)
    plan = []
    for source in sources:
        volume = volumes.get(source)
        if volume is None:
            plan.append((source, "kept: not a pool volume"))
        elif volume.key in used_elsewhere:
            plan.append((source, "kept: another VM uses it"))
        elif volume.key not in deletable:
            plan.append((source, "kept: not made for this VM (not its own)"))
        else:
            plan.append((source, "deleted"))
    return plan


def left_behind(pool: StoragePool, volumes: list[Volume]) -> dict[int, Domain]:
    """Volumes of this pool that are the source copies of a VM's disks kept after it migrated away
    with copy-storage: still owned by the VM (records_left_behind), which now runs on another host.
    Volume id -> the VM's row. Who may see the VM is the caller's question (accounts.access)."""
    owners = dict(VolumeRecord.objects.filter(host_id=pool.host_id, key__in=[v.key for v in volumes],
                                              owner_uuid__isnull=False).values_list("key", "owner_uuid"))
    if not owners:
        return {}
    here = set(Domain.objects.filter(host_id=pool.host_id, uuid__in=owners.values()).values_list("uuid", flat=True))
    away = {row.uuid: row for row in Domain.objects.filter(uuid__in=set(owners.values()) - here)
            .exclude(host_id=pool.host_id).select_related("host")}
    return {volume.pk: away[owners[volume.key]] for volume in volumes
            if volume.key in owners and owners[volume.key] in away}
