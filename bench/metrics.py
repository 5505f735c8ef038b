"""Graph storage: bytes per VM for the samples kept (a day of them), and the cost of one round.

What it measures, on a throwaway SQLite database (or DATABASE_URL's, whose rows it removes):

* `kept_bytes_per_vm`: a VM's samples at steady state, everything that is ever kept for it: an
  hour at one point per GRAPH_SAMPLE_SECONDS (720 at 5 s) plus 25 hours of per-minute points
  (1,500), measured as the growth of the database file (SQLite, after VACUUM) or of the table
  (PostgreSQL, pg_total_relation_size) for --vms VMs, divided by --vms;
* `store_round`: one sampling round's insert for --vms VMs (bulk_create), p50/p95;
* `compact`: turning an hour of one minute's fine samples into per-minute ones for --vms VMs.

Run:  .venv/bin/python bench/metrics.py [--vms 200]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.inventory import django_env, emit, percentile, progress, setup_django  # noqa: E402

BENCH = "metrics"


def run(vm_count: int, work_dir: Path) -> None:
    setup_django(django_env(work_dir / "data"))
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from domains.models import Domain
    from hosts.models import Host
    from metrics.models import Resolution, Sample
    from metrics.sampler import FINE_KEPT, MINUTE_KEPT, compact

    host = Host.objects.create(name=f"bench-metrics-{int(time.time())}", transport="test", address="default")
    try:
        now = timezone.now()
        domains = Domain.objects.bulk_create(
            Domain(host=host, uuid=f"00000000-0000-4000-8000-{index:012d}", name=f"bench-{index}", synced_at=now)
            for index in range(vm_count))
        fine_points = int(FINE_KEPT.total_seconds() // settings.GRAPH_SAMPLE_SECONDS)
        minute_points = int(MINUTE_KEPT.total_seconds() // 60)
        size_before = storage_bytes(connection)
        rows = []
        for domain in domains:
            rows += sample_rows(host, domain, now, fine_points, settings.GRAPH_SAMPLE_SECONDS, Resolution.FINE)
            rows += sample_rows(host, domain, now - FINE_KEPT, minute_points, 60, Resolution.MINUTE)
        Sample.objects.bulk_create(rows, batch_size=2000)
        kept = (storage_bytes(connection) - size_before) / vm_count
        emit({"bench": BENCH, "operation": "kept_bytes_per_vm", "vms": vm_count, "fine_points": fine_points,
              "minute_points": minute_points, "bytes": round(kept), "database": connection.vendor})

        round_ms = []
        for _ in range(20):
            batch = [Sample(host=host, domain=domain, at=timezone.now(), cpu_percent=1.5, memory_kib=65536)
                     for domain in domains]
            started = time.perf_counter()
            Sample.objects.bulk_create(batch)
            round_ms.append((time.perf_counter() - started) * 1000)
        emit({"bench": BENCH, "operation": "store_round", "vms": vm_count, "samples": len(round_ms),
              "median_ms": round(statistics.median(round_ms), 2), "p95_ms": round(percentile(round_ms, 0.95), 2)})

        old = now - FINE_KEPT - timedelta(minutes=5)
        Sample.objects.bulk_create([row for domain in domains for row in sample_rows(
            host, domain, old, 60 // settings.GRAPH_SAMPLE_SECONDS, settings.GRAPH_SAMPLE_SECONDS, Resolution.FINE,
            backwards=False)], batch_size=2000)
        started = time.perf_counter()
        written, deleted = compact(host_id=host.pk, now=now)
        emit({"bench": BENCH, "operation": "compact", "vms": vm_count, "minute_rows_written": written,
              "rows_deleted": deleted, "ms": round((time.perf_counter() - started) * 1000, 2)})
    finally:
        host.delete()


def sample_rows(host, domain, end, count: int, step: float, resolution: int, *, backwards: bool = True) -> list:
    from metrics.models import Sample

    sign = -1 if backwards else 1
    return [Sample(host=host, domain=domain, resolution=resolution, at=end + sign * timedelta(seconds=step * index),
                   cpu_percent=12.34 + index % 7, memory_kib=65536 + index, disk_read_bps=1024.0 * index,
                   disk_write_bps=512.0 * index, disk_read_iops=3.0, disk_write_iops=2.0, net_rx_bps=100.0 * index,
                   net_tx_bps=50.0 * index) for index in range(count)]


def storage_bytes(connection) -> int:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM")
        return Path(connection.settings_dict["NAME"]).stat().st_size
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size('metrics_sample')")
        return cursor.fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vms", type=int, default=200)
    args = parser.parse_args()
    work_dir = Path(tempfile.mkdtemp(prefix="vmsite-bench-metrics-"))
    started = time.perf_counter()
    try:
        run(args.vms, work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        progress(f"wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
