"""The cached rows of what a host has (VMs, pools, networks, interfaces, filters): their base model,
the map of what is stored of each kind, and the diff that makes a host's rows equal to a list.

Each object app's sync module (domains/sync.py, storage/sync.py, networking/sync.py) declares one
`ColumnMap` per model and writes its rows through it alone, whoever the writer is (the listener's
refresh, an operation's handler, the reconcile of a whole host in inventory/)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import F


class CachedHostObject(models.Model):
    """Something a host has (a VM, a pool, a network), as last seen: a cache that reconcile and
    the event listener keep true. Subclasses add the host foreign key and their own columns."""

    uuid = models.UUIDField()
    name = models.CharField(max_length=255)
    synced_at = models.DateTimeField()  # when this row last changed; Host.synced_at: last full reconcile
    # Bumped on every change, so that live clients can tell when they missed one.
    seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class ColumnMap:
    """What is stored of one kind of object: which attribute of what libvirt reports (a summary
    from a bulk read, or one object read afresh) goes in which column of its cached model."""

    model: type[models.Model]
    columns: Mapping[str, str]  # attribute of the report -> column of the model
    # Columns a bulk read cannot always tell (it says None): the cached value stays.
    unknown_when_none: tuple[str, ...] = ()

    def values(self, report: Any) -> dict[str, Any]:
        """The columns' values that `report` gives."""
        return {column: getattr(report, attribute) for attribute, column in self.columns.items()}

    def without(self, *attributes: str) -> ColumnMap:
        """The same map for a report that lacks these attributes (a bulk read tells less)."""
        return ColumnMap(self.model, {attribute: column for attribute, column in self.columns.items()
                                      if attribute not in attributes}, self.unknown_when_none)


@dataclass
class Diff:
    new: int = 0
    gone: int = 0
    new_uuids: tuple = ()
    changed: int = 0
    total: int = 0

    @property
    def any_change(self) -> bool:
        return bool(self.new or self.gone or self.changed)

    def __str__(self) -> str:
        changes = [f"{count} {what}" for count, what in ((self.new, "new"), (self.changed, "changed"),
                                                            (self.gone, "gone")) if count]
        return f"{self.total} ({', '.join(changes)})" if changes else f"{self.total} (no change)"


def rows_delete(model: type[models.Model], pks: list[int]) -> None:
    model.objects.filter(pk__in=pks).delete()


def apply_diff(column_map: ColumnMap, *, host: Any, reports: Iterable[Any], now: datetime,
               forget: Callable[[list[int]], None] | None = None, read_at: datetime | None = None) -> Diff:
    """Make the host's rows of `column_map.model` equal to `reports` (each with a `uuid`): insert
    the new, update the changed, and hand the gone rows' ids to `forget` (by default, delete them).
    With read_at (when the reports were read), a row written after it is left as it is: its writer
    read the object later (a VM created, or stopped and refreshed, while the reports were read and
    applied), and the reports would delete or undo it."""
    model = column_map.model
    columns = list(column_map.columns.values())
    attributes = list(column_map.columns)
    reported = {report.uuid: tuple(getattr(report, name) for name in attributes) for report in reports}
    # Plain tuples, not model instances: at a thousand rows per host this is most of the cost.
    cached, later = {}, set()
    for pk, uuid, synced_at, *values in model.objects.filter(host=host).values_list("pk", "uuid", "synced_at", *columns):
        if read_at is not None and synced_at is not None and synced_at > read_at:
            later.add(uuid)
        else:
            cached[uuid] = (pk, tuple(values))
    reported = {uuid: values for uuid, values in reported.items() if uuid not in later}
    for position in [columns.index(column) for column in column_map.unknown_when_none if column in columns]:
        for uuid, values in reported.items():
            if values[position] is None and uuid in cached:
                reported[uuid] = (*values[:position], cached[uuid][1][position], *values[position + 1:])
    gone = [pk for uuid, (pk, _values) in cached.items() if uuid not in reported]
    if gone:
        (forget or (lambda pks: rows_delete(model, pks)))(gone)
    new = [model(host=host, uuid=uuid, synced_at=now, **dict(zip(columns, values)))
           for uuid, values in reported.items() if uuid not in cached]
    model.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)  # a racing reconcile got there first
    changed = 0
    for uuid, values in reported.items():
        pk, cached_values = cached.get(uuid, (None, values))
        if cached_values != values:
            model.objects.filter(pk=pk).update(seq=F("seq") + 1, synced_at=now, **dict(zip(columns, values)))
            changed += 1
    # Unchanged rows keep their synced_at (when they last changed); Host.synced_at says when the
    # whole inventory was last confirmed. Rewriting every row each time would double the cost.
    return Diff(new=len(new), gone=len(gone), changed=changed, total=len(reported),
                new_uuids=tuple(row.uuid for row in new))
