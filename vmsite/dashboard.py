"""The dashboard's figures, read from the database only (never libvirt), in a fixed number of
queries whatever the number of hosts and VMs, and only over what the user may see."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from operator import or_

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from accounts.access import domains_for, hosts_for, operations_for
from backups.selectors import failed_health_checks, failed_job_backups, jobs_that_skipped
from domains.choices import DOMAIN_STATE_COLOURS, DomainState
from hosts.choices import HostStatus
from hosts.models import Host
from hosts.selectors import host_list, mark_watched
from metrics.models import Resolution, Sample
from operations.choices import OperationState
from storage.models import StoragePool
from vmsite.units import binary_size

POOL_NEARLY_FULL_PERCENT = 90
FAILED_WINDOW = timedelta(hours=1)
BUSIEST_COUNT = 5

# Attention reasons, most urgent first: a host's place in the list is its most urgent reason's.
OFFLINE, CREDENTIALS, NOT_WATCHED, POOL_FULL, FAILED_OPERATIONS, FAILED_BACKUPS = range(6)


@dataclass
class Attention:
    """One host (or, for operations on hosts the user may not see, None) and why it needs a look."""

    host: Host | None
    reasons: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rank(self) -> int:
        return min(rank for rank, _ in self.reasons)


@dataclass
class Gauge:
    """One capacity figure of a host: used against what it has, with the words to show."""

    used: float
    total: float
    text: str
    note: str = ""

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.used / self.total)) if self.total else 0


def capacity(host: Host) -> dict[str, Gauge | None]:
    """A host's CPU, memory and storage, used against what it has (None: not known yet). Needs the
    attributes dashboard_figures sets."""
    cpu = memory = storage = None
    if host.cpu_count:
        note = f"host busy {host.cpu_percent_now:.0f}% now" if host.cpu_percent_now is not None else ""
        cpu = Gauge(host.vcpus_in_use or 0, host.cpu_count, f"{host.vcpus_in_use or 0} / {host.cpu_count} vCPUs", note)
    if host.memory_kib:
        note = (f"{binary_size(host.memory_used_kib_now * 1024)} in use on the host now"
                if host.memory_used_kib_now is not None else "")
        used = (host.memory_in_use_kib or 0) * 1024
        memory = Gauge(used, host.memory_kib * 1024, f"{binary_size(used)} / {binary_size(host.memory_kib * 1024)}", note)
    if host.storage_capacity:
        storage = Gauge(host.storage_allocation, host.storage_capacity,
                        f"{binary_size(host.storage_allocation)} / {binary_size(host.storage_capacity)}")
    return {"cpu": cpu, "memory": memory, "storage": storage}


@dataclass
class Busy:
    domain_id: int
    name: str
    cpu_percent: float
    disk_bps: float
    net_bps: float

    @property
    def disk_text(self) -> str:
        return f"{binary_size(self.disk_bps)}/s"

    @property
    def net_text(self) -> str:
        return f"{binary_size(self.net_bps)}/s"


def dashboard_figures(user: AbstractBaseUser, *, now: datetime | None = None) -> dict:
    """Everything the dashboard shows, as template context."""
    now = now or timezone.now()
    hosts = mark_watched(list(host_list().filter(pk__in=hosts_for(user).values("pk"))))
    _add_storage(hosts)
    latest = _latest_sample_times(user, now)
    _add_host_load(hosts, latest)
    for host in hosts:
        host.capacity = capacity(host)
    counts = dict(domains_for(user).values_list("state").annotate(n=Count("id")).order_by())
    return {
        "hosts": hosts,
        "state_counts": [(DomainState(state).label, DOMAIN_STATE_COLOURS[state], counts[state])
                         for state in sorted(counts)],
        "domain_total": sum(counts.values()),
        "attention": attention_list(user, hosts, now=now),
        "operations": operations_for(user).select_related("user")[:10],
        **busiest_vms(user, latest),
    }


def _add_storage(hosts: list[Host]) -> None:
    """host.storage_capacity / storage_allocation (active pools) and host.full_pools, in one query."""
    by_host: dict[int, list[StoragePool]] = {}
    for pool in (StoragePool.objects.filter(host_id__in=[host.pk for host in hosts], active=True, capacity__gt=0)
                 .only("pk", "host_id", "name", "capacity", "allocation").order_by("name")):
        by_host.setdefault(pool.host_id, []).append(pool)
    for host in hosts:
        pools = by_host.get(host.pk, [])
        host.storage_capacity = sum(pool.capacity for pool in pools)
        host.storage_allocation = sum(pool.allocation for pool in pools)
        host.full_pools = [pool for pool in pools
                           if pool.allocation * 100 >= POOL_NEARLY_FULL_PERCENT * pool.capacity]


def _latest_sample_times(user: AbstractBaseUser, now: datetime) -> dict[int, datetime]:
    """Each host's newest sample time, for the hosts whose samples the user sees (a whole host, or
    a VM on it): "now" on a host is its last sampling, if recent. One query."""
    window = max(timedelta(minutes=1), timedelta(seconds=3 * settings.GRAPH_SAMPLE_SECONDS))
    visible = Q(host_id__in=hosts_for(user).values("pk")) | Q(host_id__in=domains_for(user).values("host_id"))
    rows = (Sample.objects.filter(visible, domain__isnull=True, resolution=Resolution.FINE, at__gte=now - window)
            .values("host_id").annotate(latest=Max("at")).order_by())
    return {row["host_id"]: row["latest"] for row in rows}


def _add_host_load(hosts: list[Host], latest: dict[int, datetime]) -> None:
    """host.cpu_percent_now and host.memory_used_kib_now from each host's newest sample (one query)."""
    rows = {}
    shown = {host.pk: latest[host.pk] for host in hosts if host.pk in latest}
    if shown:
        # The VMs' rows at those moments come along (a few per VM): filtering them out in SQL makes
        # SQLite walk the domain index's whole NULL range instead.
        rows = {host_id: (cpu, memory) for host_id, domain_id, cpu, memory in
                Sample.objects.filter(_moments(shown)).values_list("host_id", "domain_id", "cpu_percent", "memory_kib")
                if domain_id is None}
    for host in hosts:
        host.cpu_percent_now, host.memory_used_kib_now = rows.get(host.pk, (None, None))


def _moments(latest: dict[int, datetime]) -> Q:
    """The fine samples taken at each host's given moment (index sample_host_series, one probe each)."""
    return reduce(or_, [Q(host_id=host_id, resolution=Resolution.FINE, at=at) for host_id, at in latest.items()])


def attention_list(user: AbstractBaseUser, hosts: list[Host], *, now: datetime) -> list[Attention]:
    """Hosts that need a look, most urgent first (then by name); `hosts` come from dashboard_figures
    (watched, full_pools set). Disabled hosts are the admin's choice: not listed."""
    items: dict[int | None, Attention] = {}
    for host in hosts:
        if not host.enabled:
            continue
        reasons = items.setdefault(host.pk, Attention(host)).reasons
        if host.status == HostStatus.OFFLINE:
            reasons.append((OFFLINE, f"Offline: {host.status_reason or 'not answering'}"))
        elif host.status == HostStatus.ERROR:
            reasons.append((CREDENTIALS, f"Credentials failing: {host.status_reason}"))
        if host.watched is False:
            reasons.append((NOT_WATCHED, "Not watched: no event listener follows it"))
        for pool in host.full_pools:
            reasons.append((POOL_FULL, f"Pool {pool.name} is {pool.used_percent}% full"))
    shown = {host.pk for host in hosts if host.enabled}
    failed: dict[int | None, int] = {}
    for row in (operations_for(user).filter(state=OperationState.FAILED, finished_at__gte=now - FAILED_WINDOW)
                .values("host_id").annotate(n=Count("id")).order_by()):
        key = row["host_id"] if row["host_id"] in shown else None  # a host they may not see stays unnamed
        failed[key] = failed.get(key, 0) + row["n"]
    for key, count in failed.items():
        items.setdefault(key, Attention(None)).reasons.append(
            (FAILED_OPERATIONS, f"{count} failed operation{'s' if count != 1 else ''} in the last hour"))
    for operation in failed_job_backups(user):  # until the VM's next good backup
        key = operation.host_id if operation.host_id in shown else None
        vm = operation.target_label.split(":")[0]
        items.setdefault(key, Attention(None)).reasons.append(
            (FAILED_BACKUPS, f"Backup of {vm} by the job {operation.arguments.get('job_name', '?')} failed: "
                             f"{operation.error[:200]}"))
    for job in jobs_that_skipped(user):  # until the job's next run
        key = job.host_id if job.host_id in shown else None
        items.setdefault(key, Attention(None)).reasons.append(
            (FAILED_BACKUPS, f"The job {job.name} skipped at its last run: {'; '.join(job.last_run_skipped)[:300]}"))
    for domain, point in failed_health_checks(user):  # until a later check of its backups passes
        key = domain.host_id if domain.host_id in shown else None
        items.setdefault(key, Attention(None)).reasons.append(
            (FAILED_BACKUPS,
             f"The health check of {domain.name}'s backup {point.name} failed: {point.health_note[:200]}"))
    listed = [item for item in items.values() if item.reasons]
    for item in listed:
        item.reasons.sort()
    return sorted(listed, key=lambda item: (item.rank, item.host is None, item.host.name if item.host else ""))


def busiest_vms(user: AbstractBaseUser, latest: dict[int, datetime] | None = None, *,
                count: int = BUSIEST_COUNT) -> dict[str, list]:
    """The VMs the user may see that are busiest now (each host's newest sample), by CPU, disk and
    network throughput: one query (two without `latest`)."""
    if latest is None:
        latest = _latest_sample_times(user, timezone.now())
    if not latest:
        return {"busiest_columns": _columns([], count)}
    # EXISTS, not IN: with IN, SQLite walks every visible VM's whole series (0.3 s for 500 VMs
    # with an hour of samples) instead of the few rows at each host's moment (bench/dashboard.py).
    visible = Exists(domains_for(user).filter(pk=OuterRef("domain_id")))
    rows = [Busy(domain_id, name, cpu, disk_read + disk_write, rx + tx) for domain_id, name, cpu, disk_read,
            disk_write, rx, tx in Sample.objects.filter(_moments(latest), visible)
            .values_list("domain_id", "domain__name", "cpu_percent", "disk_read_bps", "disk_write_bps",
                         "net_rx_bps", "net_tx_bps")]
    return {"busiest_columns": _columns(rows, count)}


def _columns(rows: list[Busy], count: int) -> list[tuple[str, list[Busy], str]]:
    """(title, the `count` busiest rows by that figure, column name) for CPU, disk and network."""
    def top(key: str) -> list[Busy]:
        return sorted((row for row in rows if getattr(row, key) > 0),
                      key=lambda row: (-getattr(row, key), row.name))[:count]

    return [("CPU", top("cpu_percent"), "cpu"), ("Disk (read + write)", top("disk_bps"), "disk"),
            ("Network (in + out)", top("net_bps"), "net")]
