"""Graph samples: rates from two readings of a host's counters, stored per VM and per host, and kept
bounded: every few seconds for the last hour, then one averaged point per minute for a day."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Avg, Max
from django.db.models.functions import TruncMinute
from django.utils import timezone

from domains.models import Domain
from events.publish import publish
from metrics.models import Resolution, Sample
from virt.stats import DomainCounters, Reading, read_counters
from virt.types import Connection

FINE_KEPT = timedelta(hours=1)
MINUTE_KEPT = timedelta(hours=25)  # a full day is always there to draw
RATE_FIELDS = ("disk_read_bps", "disk_write_bps", "disk_read_iops", "disk_write_iops", "net_rx_bps", "net_tx_bps")
_COUNTER_OF = {"disk_read_bps": "disk_read_bytes", "disk_write_bps": "disk_write_bytes",
               "disk_read_iops": "disk_read_reqs", "disk_write_iops": "disk_write_reqs",
               "net_rx_bps": "net_rx_bytes", "net_tx_bps": "net_tx_bytes"}
AVERAGED = ("cpu_percent", "memory_kib", *RATE_FIELDS, "vms_cpu_percent", "vms_memory_kib")


class HostSampler:
    """Keeps the previous reading of one host; each sample() stores the rates since then."""

    def __init__(self, host_id: int) -> None:
        self.host_id = host_id
        self.previous: Reading | None = None

    def sample(self, conn: Connection) -> int:
        reading = read_counters(conn)
        previous, self.previous = self.previous, reading
        if previous is None:
            return 0
        seconds = reading.monotonic - previous.monotonic
        if seconds <= 0:
            return 0
        domain_ids = dict(Domain.objects.filter(host_id=self.host_id, uuid__in=list(reading.domains))
                          .values_list("uuid", "pk"))
        at = timezone.now()
        rows = [self._domain_row(domain_ids, uuid, counters, previous.domains.get(uuid), seconds, at)
                for uuid, counters in reading.domains.items()]
        rows = [row for row in rows if row is not None]
        rows.append(self._host_row(reading, previous, rows, at))
        rows = samples_store(rows)
        publish(self.host_id, {"type": "metrics", "id": self.host_id, "at": at.isoformat()})
        return len(rows)

    def _domain_row(self, domain_ids: dict, uuid: str, now: DomainCounters, before: DomainCounters | None,
                    seconds: float, at) -> Sample | None:
        import uuid as uuid_module

        domain_id = domain_ids.get(uuid_module.UUID(uuid))
        if before is None or domain_id is None:
            return None  # just started (no rate yet), or not listed yet
        cpu = 100.0 * max(0, now.cpu_ns - before.cpu_ns) / (seconds * 1e9 * now.vcpus)
        rates = {field: max(0, getattr(now, _COUNTER_OF[field]) - getattr(before, _COUNTER_OF[field])) / seconds
                 for field in RATE_FIELDS}
        return Sample(host_id=self.host_id, domain_id=domain_id, at=at, cpu_percent=min(cpu, 100.0),
                      memory_kib=now.memory_kib, **rates)

    def _host_row(self, reading: Reading, previous: Reading, vm_rows: list[Sample], at) -> Sample:
        busy = reading.host.busy_ns - previous.host.busy_ns
        total = reading.host.total_ns - previous.host.total_ns
        sums = {field: sum(getattr(row, field) for row in vm_rows) for field in RATE_FIELDS}
        return Sample(host_id=self.host_id, domain=None, at=at,
                      cpu_percent=min(100.0, 100.0 * busy / total) if total > 0 else 0.0,
                      memory_kib=reading.host.memory_used_kib,
                      vms_cpu_percent=sum(row.cpu_percent for row in vm_rows),
                      vms_memory_kib=sum(row.memory_kib for row in vm_rows), **sums)


def samples_store(rows: list[Sample]) -> list[Sample]:
    """Insert a round's rows; those of VMs deleted since their ids were read are left out."""
    try:
        with transaction.atomic():
            return Sample.objects.bulk_create(rows)
    except IntegrityError:  # a VM's row went meanwhile (domains.identity locks it while it goes)
        domain_ids = {row.domain_id for row in rows if row.domain_id is not None}
        still_there = set(Domain.objects.filter(pk__in=domain_ids).values_list("pk", flat=True))
        kept = [row for row in rows if row.domain_id is None or row.domain_id in still_there]
        return Sample.objects.bulk_create(kept)


@transaction.atomic
def compact(*, host_id: int, now=None) -> tuple[int, int]:
    """Average the fine samples older than an hour into per-minute ones; drop what is past keeping.
    Returns (minute rows written, rows deleted)."""
    now = now or timezone.now()
    fine_cutoff = (now - FINE_KEPT).replace(second=0, microsecond=0)  # whole minutes only
    old_fine = Sample.objects.filter(host_id=host_id, resolution=Resolution.FINE, at__lt=fine_cutoff)
    groups = (old_fine.annotate(minute=TruncMinute("at")).values("domain_id", "minute")
              .annotate(**{f"avg_{name}": Avg(name) for name in AVERAGED}, last=Max("at")))
    minute_rows = [
        Sample(host_id=host_id, domain_id=group["domain_id"], resolution=Resolution.MINUTE, at=group["minute"],
               **{name: _rounded(name, group[f"avg_{name}"]) for name in AVERAGED})
        for group in groups
    ]
    Sample.objects.bulk_create(minute_rows)
    deleted, _ = old_fine.delete()
    expired, _ = Sample.objects.filter(host_id=host_id, resolution=Resolution.MINUTE,
                                       at__lt=now - MINUTE_KEPT).delete()
    return len(minute_rows), deleted + expired


def _rounded(name: str, value: float | None) -> float | int:
    value = value or 0
    return int(round(value)) if name.endswith("_kib") else value


def series(*, host_id: int, domain_id: int | None, since, fields: tuple[str, ...]) -> dict[str, list]:
    """Points since `since`: per-minute ones older than an hour, then the fine ones, in time order,
    as columns ({"t": [unix seconds...], field: [...]}) ready for the chart."""
    # A VM's series is its own wherever it ran (its row moves with it when it migrates).
    owner = {"domain_id": domain_id} if domain_id is not None else {"host_id": host_id, "domain_id": None}
    rows = (Sample.objects.filter(at__gt=since, **owner)
            .order_by("at", "resolution").values_list("resolution", "at", *fields))
    fine_from = timezone.now() - FINE_KEPT
    columns: dict[str, list] = {"t": [], **{field: [] for field in fields}}
    for resolution, at, *values in rows:
        if resolution == Resolution.MINUTE and at >= fine_from:
            continue  # the fine points cover this stretch
        columns["t"].append(round(at.timestamp(), 3))
        for field, value in zip(fields, values):
            columns[field].append(round(value, 2) if isinstance(value, float) else value)
    return columns
