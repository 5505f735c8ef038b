"""Keeping the cached pool and volume rows equal to what libvirt says: the whole host's volumes
on reconcile, and one pool (with its volumes) after each change. pool_refresh_row is the one
function per pool that re-reads it; event callbacks can call it too."""
from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from hosts.models import Host
from storage.models import StoragePool, Volume
from storage.records import records_for, records_forget
from virt.errors import VirtError
from virt.inventory import PoolSummary
from virt.storage import VolumeSummary, refetch_pool
from virt.types import Connection

_VOLUME_FIELDS = ("name", "path", "vol_type", "format", "capacity", "allocation", "backing_path")
POOL_FIELDS = ("name", "pool_type", "target_path", "active", "autostart", "capacity", "allocation", "available",
               "details")


def volumes_apply(*, host: Host, summaries: Iterable[VolumeSummary], pools: Iterable[StoragePool] | None = None,
                  now=None) -> int:
    """Make the host's volume rows (of the given pools, or of all its pools) equal to summaries.
    Returns how many rows changed, came or went."""
    now = now or timezone.now()
    pool_rows = list(pools) if pools is not None else list(StoragePool.objects.filter(host=host))
    pool_ids = {row.uuid: row.pk for row in pool_rows}
    reported = {summary.key: summary for summary in summaries if summary.pool_uuid in pool_ids}
    cached = {row[0]: row[1:] for row in Volume.objects.filter(host=host, pool_id__in=pool_ids.values())
              .values_list("key", "pk", "pool_id", *_VOLUME_FIELDS)}
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
                  **_columns(summary))
           for key, summary in reported.items() if key not in cached]
    Volume.objects.bulk_create(new, ignore_conflicts=True)
    changed = 0
    for key, summary in reported.items():
        if key not in cached:
            continue
        pk, pool_id, *values = cached[key]
        columns = _columns(summary)
        if pool_id != pool_ids[summary.pool_uuid] or tuple(values) != tuple(columns.values()):
            Volume.objects.filter(pk=pk).update(pool_id=pool_ids[summary.pool_uuid], synced_at=now,
                                                seq=F("seq") + 1, **columns)
            changed += 1
    return len(gone) + len(new) + changed


def _columns(summary: VolumeSummary) -> dict:
    return {name: getattr(summary, name) for name in _VOLUME_FIELDS}


@transaction.atomic
def pool_apply_state(*, pool: StoragePool, live: tuple[PoolSummary, list[VolumeSummary]] | None) -> None:
    """Store what libvirt says of one pool now; None means it is gone from its host."""
    if live is None:
        StoragePool.objects.filter(pk=pool.pk).delete()
        return
    summary, volumes = live
    StoragePool.objects.filter(pk=pool.pk).update(synced_at=timezone.now(), seq=F("seq") + 1,
                                                  **{name: getattr(summary, name) for name in POOL_FIELDS})
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
        defaults={"synced_at": timezone.now(), **{name: getattr(summary, name) for name in POOL_FIELDS}})
    return row
