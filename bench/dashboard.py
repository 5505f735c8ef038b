"""The dashboard page: render time and query count with 20 hosts / 500 VMs of rows and graph
samples, against the naive way (a loop per host and per VM) in the same run.

For each database (SQLite in a temporary folder; PostgreSQL on 127.0.0.1:5432 as user postgres,
in a throwaway database made and dropped here, when it answers) a child process of this script
fills the database, then renders the page --requests times each way, alternating, as a logged-in
administrator (the view called in-process: context, queries and template, no HTTP):

* `dashboard`: vmsite's view (vmsite/dashboard.py): a fixed number of queries;
* `dashboard_naive`: the same page from figures read with a query per host and per VM.

Each line gives p50/p95 in ms and the queries of one render; `ratio` = naive p50 / dashboard p50.

Run:  .venv/bin/python bench/dashboard.py [--hosts 20 --vms 500 --minutes 60 --requests 30]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.inventory import django_env, emit, percentile, progress, setup_django  # noqa: E402

BENCH = "dashboard"
POSTGRES = "postgres://postgres@127.0.0.1:5432/"


def fill(hosts: int, vms: int, minutes: int) -> None:
    """Hosts (half with a nearly full pool, some offline), VMs spread over them, `minutes` of fine
    samples every GRAPH_SAMPLE_SECONDS for every VM and host, and operations (some failed)."""
    from django.conf import settings
    from django.utils import timezone

    from domains.choices import DomainState
    from domains.models import Domain
    from hosts.models import Host
    from metrics.models import Sample
    from operations.models import Operation
    from storage.models import StoragePool

    now = timezone.now()
    gib = 1024 ** 3
    host_rows = Host.objects.bulk_create(
        Host(name=f"bench-{index:02d}", transport="tcp", address=f"127.0.1.{index + 1}", cpu_count=32,
             memory_kib=128 * 1024 * 1024, status="offline" if index % 7 == 3 else "online",
             status_reason="Connection refused" if index % 7 == 3 else "") for index in range(hosts))
    StoragePool.objects.bulk_create(
        StoragePool(host=host, uuid=uuid.uuid4(), name=f"pool-{n}", pool_type="dir", active=True, capacity=1000 * gib,
                    allocation=(950 if n == 0 and index % 2 else 300) * gib, available=100 * gib, synced_at=now)
        for index, host in enumerate(host_rows) for n in range(2))
    states = [DomainState.RUNNING] * 3 + [DomainState.SHUTOFF, DomainState.PAUSED]
    domains = Domain.objects.bulk_create(
        Domain(host=host_rows[index % hosts], uuid=uuid.uuid4(), name=f"vm-{index:04d}", state=states[index % 5],
               vcpus=2, memory_kib=2 * 1024 * 1024, synced_at=now) for index in range(vms))
    Operation.objects.bulk_create(
        Operation(kind="domain.start", target_type="domain", target_id=domain.pk, target_label=domain.name,
                  host_id=domain.host_id, state="failed" if index % 10 == 0 else "succeeded",
                  finished_at=now - timedelta(minutes=index % 120)) for index, domain in enumerate(domains))
    step = settings.GRAPH_SAMPLE_SECONDS
    points = max(1, minutes * 60 // step)
    for point in range(points):
        at = now - timedelta(seconds=step * point)
        rows = [Sample(host=host, at=at, cpu_percent=20.0, memory_kib=64 * 1024 * 1024) for host in host_rows]
        rows += [Sample(host_id=domain.host_id, domain=domain, at=at, cpu_percent=(index * 7 + point) % 100,
                        memory_kib=1024 * 1024, disk_read_bps=1000.0 * (index % 13), net_rx_bps=500.0 * (index % 17))
                 for index, domain in enumerate(domains)]
        Sample.objects.bulk_create(rows, batch_size=5000)
    progress(f"filled {hosts} hosts, {vms} VMs, {points * (vms + hosts)} samples")


def newest_round() -> None:
    """One sampling round at this moment: filling took longer than the minute that counts as now."""
    from django.utils import timezone

    from domains.models import Domain
    from hosts.models import Host
    from metrics.models import Sample

    at = timezone.now()
    rows = [Sample(host=host, at=at, cpu_percent=30.0, memory_kib=70 * 1024 * 1024) for host in Host.objects.all()]
    rows += [Sample(host_id=host_id, domain_id=pk, at=at, cpu_percent=(pk * 11) % 100, memory_kib=1024 * 1024,
                    disk_write_bps=100.0 * (pk % 19), net_tx_bps=10.0 * (pk % 23))
             for pk, host_id in Domain.objects.values_list("pk", "host_id")]
    Sample.objects.bulk_create(rows, batch_size=5000)


def naive_figures(user) -> dict:
    """The same figures, read the way that comes first to mind: a query or more per host and per VM."""
    from django.utils import timezone

    from accounts.access import domains_for, hosts_for, operations_for
    from domains.choices import ACTIVE_STATES, DOMAIN_STATE_COLOURS, DomainState
    from hosts.selectors import mark_watched
    from metrics.models import Resolution, Sample
    from storage.models import StoragePool
    from vmsite import dashboard

    now = timezone.now()
    hosts = mark_watched(list(hosts_for(user)))
    since = now - timedelta(minutes=1)
    for host in hosts:
        domains = list(host.domains.all())
        host.domain_count = len(domains)
        host.running_count = sum(1 for d in domains if d.state == DomainState.RUNNING)
        host.paused_count = sum(1 for d in domains if d.state == DomainState.PAUSED)
        host.shutoff_count = sum(1 for d in domains if d.state == DomainState.SHUTOFF)
        host.vcpus_in_use = sum(d.vcpus or 0 for d in domains if d.state in ACTIVE_STATES)
        host.memory_in_use_kib = sum(d.memory_kib or 0 for d in domains if d.state in ACTIVE_STATES)
        pools = list(StoragePool.objects.filter(host=host, active=True, capacity__gt=0))
        host.storage_capacity = sum(p.capacity for p in pools)
        host.storage_allocation = sum(p.allocation for p in pools)
        host.full_pools = [p for p in pools if p.allocation * 100 >= dashboard.POOL_NEARLY_FULL_PERCENT * p.capacity]
        latest = (Sample.objects.filter(host=host, domain=None, resolution=Resolution.FINE, at__gte=since)
                  .order_by("-at").first())
        host.cpu_percent_now = latest.cpu_percent if latest else None
        host.memory_used_kib_now = latest.memory_kib if latest else None
        host.capacity = dashboard.capacity(host)
    busy = []
    for domain in domains_for(user):
        latest = (Sample.objects.filter(domain=domain, resolution=Resolution.FINE, at__gte=since)
                  .order_by("-at").first())
        if latest:
            busy.append(dashboard.Busy(domain.pk, domain.name, latest.cpu_percent,
                                       latest.disk_read_bps + latest.disk_write_bps,
                                       latest.net_rx_bps + latest.net_tx_bps))
    counts = {}
    for domain in domains_for(user):
        counts[domain.state] = counts.get(domain.state, 0) + 1
    return {"hosts": hosts, "domain_total": sum(counts.values()),
            "state_counts": [(DomainState(s).label, DOMAIN_STATE_COLOURS[s], counts[s]) for s in sorted(counts)],
            "attention": dashboard.attention_list(user, hosts, now=now),
            "operations": operations_for(user).select_related("user")[:10],
            "busiest_columns": dashboard._columns(busy, dashboard.BUSIEST_COUNT)}


def measure(requests: int) -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import RequestFactory
    from django.test.utils import CaptureQueriesContext

    from domains.models import Domain
    from hosts.models import Host
    from vmsite.views import DashboardView

    class NaiveDashboardView(DashboardView):
        def get_context_data(self, **kwargs):
            context = super(DashboardView, self).get_context_data(**kwargs)
            context.update(naive_figures(self.request.user))
            context["refresh_seconds"] = settings.DASHBOARD_REFRESH_SECONDS
            return context

    user = get_user_model().objects.create_superuser(f"bench-{uuid.uuid4().hex[:6]}", password="x")
    factory = RequestFactory()
    hosts, vms = Host.objects.count(), Domain.objects.count()

    def render(view) -> tuple[float, int, dict]:
        request = factory.get("/")
        request.user = user
        connection.queries_log.clear()  # a bounded deque: once full, the context would count 0
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = view(request)
            response.render()
            elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200
        return elapsed, len(queries.captured_queries), response.context_data

    newest_round()
    views = {"dashboard": DashboardView.as_view(), "dashboard_naive": NaiveDashboardView.as_view()}
    for view in views.values():  # warm-up (and the two must show the same page)
        render(view)
    shown = {name: _figures(render(view)[2]) for name, view in views.items()}
    same = shown["dashboard"] == shown["dashboard_naive"]
    if not same:
        for part, naive_part in zip(shown["dashboard"], shown["dashboard_naive"]):
            if part != naive_part:
                progress(f"the two ways differ: {part!r} != {naive_part!r}"[:3000])
    times: dict[str, list[float]] = {name: [] for name in views}
    queries: dict[str, int] = {}
    for _ in range(requests):
        for name, view in views.items():
            elapsed, count, _page = render(view)
            times[name].append(elapsed)
            queries[name] = count
    p50 = {name: percentile(values, 0.5) for name, values in times.items()}
    for name in views:
        line = {"bench": BENCH, "operation": name, "database": connection.vendor, "hosts": hosts, "domains": vms,
                "samples": len(times[name]), "median_ms": round(p50[name], 2),
                "p95_ms": round(percentile(times[name], 0.95), 2), "queries": queries[name]}
        if name == "dashboard":
            line.update(naive_median_ms=round(p50["dashboard_naive"], 2),
                        ratio=round(p50["dashboard_naive"] / p50["dashboard"], 2), same_figures=same)
        emit(line)


def _figures(context: dict) -> tuple:
    """What both ways must agree on: busiest VMs, attention, VMs by state, each host's gauges."""
    return ([(title, [(row.name, row.cpu_percent, row.disk_bps, row.net_bps) for row in rows])
             for title, rows, _ in context["busiest_columns"]],
            [(item.host and item.host.pk, item.reasons) for item in context["attention"]],
            context["state_counts"],
            [(host.pk, {name: gauge and gauge.text for name, gauge in host.capacity.items()})
             for host in context["hosts"]])


def child(args: argparse.Namespace) -> None:
    work_dir = Path(tempfile.mkdtemp(prefix="vmsite-bench-dashboard-"))
    try:
        setup_django(django_env(work_dir / "data"))
        fill(args.hosts, args.vms, args.minutes)
        measure(args.requests)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def postgres_answers() -> bool:
    import psycopg

    try:
        with psycopg.connect(POSTGRES + "postgres", connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def run_child(args: argparse.Namespace, database_url: str | None) -> None:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    argv = [sys.executable, __file__, "--child", "--hosts", str(args.hosts), "--vms", str(args.vms),
            "--minutes", str(args.minutes), "--requests", str(args.requests)]
    subprocess.run(argv, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--vms", type=int, default=500)
    parser.add_argument("--minutes", type=int, default=60, help="minutes of fine samples per VM and host")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    started = time.perf_counter()
    run_child(args, None)  # SQLite, in the child's temporary data folder
    if not postgres_answers():
        progress("PostgreSQL does not answer on 127.0.0.1:5432: SQLite only")
    else:
        import psycopg

        name = f"vmsite_bench_dashboard_{os.getpid()}"
        with psycopg.connect(POSTGRES + "postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            run_child(args, POSTGRES + name)
        finally:
            with psycopg.connect(POSTGRES + "postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    progress(f"wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
