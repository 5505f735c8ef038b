"""Storing what libvirt says of pools and volumes in their cached rows, for every writer: the
handlers (one pool, with its volumes, after each change: pool_refresh_row), the domain handlers
that make disks (pools_reconcile), and the reconcile of a whole host (inventory/reconcile.py).
`POOL_COLUMNS` and `VOLUME_COLUMNS` are the one list of what a row keeps of libvirt's answer."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from events.publish import publish_inventory
from hosts.cached import ColumnMap, Diff, apply_diff
from hosts.models import Host
from storage.models import StoragePool, Volume
from storage.records import records_for, records_forget
from virt.errors import VirtError
from virt.storage import PoolSummary, VolumeSummary, list_all_volumes, list_pools, refetch_pool
from virt.types import Connection

POOL_COLUMNS = ColumnMap(StoragePool, {name: name for name in (
    "name", "pool_type", "target_path", "active", "autostart", "capacity", "allocation", "available", "details")})
# Volumes are keyed by their libvirt key, not a UUID: volumes_apply is their diff.
VOLUME_COLUMNS = ColumnMap(Volume, {name: name for name in (
    "name", "path", "vol_type", "format", "capacity", "allocation", "backing_path")})


def pools_apply(*, host: Host, summaries: Iterable[PoolSummary], now: datetime) -> Diff:
    """Make the host's pool rows equal to a list of its pools (their volumes: volumes_apply)."""
    return apply_diff(POOL_COLUMNS, host=host, reports=summaries, now=now)


def pools_reconcile(conn: Connection, *, host: Host) -> Diff:
    """The host's pools and volumes alone, after an operation that makes or moves disks (a VM's
    create, clone or migration): its VMs and networks are the whole reconcile's."""
    with transaction.atomic():
        now = timezone.now()
        diff = pools_apply(host=host, summaries=list_pools(conn), now=now)
        volumes_changed = volumes_apply(host=host, summaries=list_all_volumes(conn), now=now)
        if diff.any_change or volumes_changed:
            transaction.on_commit(lambda: publish_inventory(host_id=host.pk))
    return diff


def volumes_apply(*, host: Host, summaries: Iterable[VolumeSummary], pools: Iterable[StoragePool] | None = None,
                  now=None) -> int:
    """Make the host's volume rows (of the given pools, or of all its pools) equal to summaries.
    Returns how many rows changed, came or went."""
    now = now or timezone.now()
    pool_rows = list(pools) if pools is not None else list(StoragePool.objects.filter(host=host))
    pool_ids = {row.uuid: row.pk for row in pool_rows}
    reported = {summary.key: summary for summary in summaries if summary.pool_uuid in pool_ids}
    cached = {row[0]: row[1:] for row in Volume.objects.filter(host=host, pool_id__in=pool_ids.values())
              .values_list("key", "pk", "pool_id", *VOLUME_COLUMNS.columns.values())}
    gone = [values[0] for key, values in cached.items() if key not in reported]
    Volume.objects.filter(pk__in=gone).delete()
    active_pools = set(StoragePool.objects.filter(pk__in=pool_ids.values(), active=True).values_list("pk", flat=True))
    records_forget(host=host, keys=[key for key, values in cached.items()
                                    if key not in reported and values[1] in active_pools])
    unlinked = set(Volume.objects.filter(host=host, pool_id__in=pool_ids.values(), record__isnull=True)
                   .values_list("key", flat=True))
    records = records_for(host=host, seen={key: summary.format for key, summary in reported.items()
                                           if key not in cached or key in unlinked})
    for key in unlinked & records.keys():  # rows cached before vmsite kept records
        Volume.objects.filter(host=host, key=key).update(record_id=records[key])
    new = [Volume(host=host, pool_id=pool_ids[summary.pool_uuid], key=key, synced_at=now, record_id=records.get(key),
                  **VOLUME_COLUMNS.values(summary))
           for key, summary in reported.items() if key not in cached]
    Volume.objects.bulk_create(new, ignore_conflicts=True)
    changed = 0
    for key, summary in reported.items():
        if key not in cached:
            continue
        pk, pool_id, *values = cached[key]
        columns = VOLUME_COLUMNS.values(summary)
        if pool_id != pool_ids[summary.pool_uuid] or tuple(values) != tuple(columns.values()):
            Volume.objects.filter(pk=pk).update(pool_id=pool_ids[summary.pool_uuid], synced_at=now,
                                                seq=F("seq") + 1, **columns)
            changed += 1
    return len(gone) + len(new) + changed


@transaction.atomic
def pool_apply_state(*, pool: StoragePool, live: tuple[PoolSummary, list[VolumeSummary]] | None) -> None:
    """Store what libvirt says of one pool now; None means it is gone from its host."""
    if live is None:
        StoragePool.objects.filter(pk=pool.pk).delete()
        return
    summary, volumes = live
    StoragePool.objects.filter(pk=pool.pk).update(synced_at=timezone.now(), seq=F("seq") + 1,
                                                  **POOL_COLUMNS.values(summary))
    volumes_apply(host=pool.host, summaries=volumes, pools=[pool])


def pool_refresh_row(conn: Connection, pool: StoragePool) -> None:
    """The database shows the pool and its volumes as libvirt has them now."""
    try:
        live = refetch_pool(conn, str(pool.uuid))
    except VirtError:
        return  # the host went away mid-action: the listener and the next reconcile catch up
    pool_apply_state(pool=pool, live=live)


def pool_row_for(*, host: Host, summary: PoolSummary) -> StoragePool:
    """The row of a pool just defined, made at once so that the user can be sent to its page."""
    row, _created = StoragePool.objects.get_or_create(
        host=host, uuid=summary.uuid,
        defaults={"synced_at": timezone.now(), **POOL_COLUMNS.values(summary)})
    return row
