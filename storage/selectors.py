"""Reads for the storage pages, from the cached tables only."""
from __future__ import annotations

from collections import defaultdict

from django.db.models import Q, QuerySet

from domains.models import Domain
from hosts.models import Host
from storage.models import StoragePool, Volume


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
