"""Lifecycle dispatch benchmark: start/destroy cycles through vmsite against libvirt-python directly.

What it measures (TESTING.md, Benchmarks), side by side in one run on one diskless guest:

* through vmsite: POST /vms/<pk>/start/ (and /force_off/) over the web server, logged in, until the
  Operation row is finished, with a real Celery worker and Redis; the "dispatch" figure is
  queue to claim (Operation.started_at - created_at: the moment the worker starts the libvirt
  call), "total" is POST to done;
* directly: the same `create()` and `destroy()` calls with libvirt-python on an open connection;
* total_overhead = POST to done less the time of the action's libvirt calls, timed by the worker
  around them (Operation.libvirt_ms): the target (p50 <= 30 ms) applies to it and to dispatch;
* overhead = total through vmsite - the direct call, per cycle, the two paths taking turns at going
  first; qemu's own start/teardown times vary too much for this pairing to be more than a check.

Run:  .venv/bin/python bench/actions.py [--cycles 100]
Needs root and the main libvirtd (qemu:///system); it defines one guest of its own (bench-actions-*)
and removes it, and uses Redis database 14 so that no other worker takes its tasks.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import libvirt  # noqa: E402

from bench.inventory import (  # noqa: E402
    asgi_server, django_env, emit, logged_in_session, percentile, progress, setup_django, superuser,
)
from tests.guests import small_guest_xml  # noqa: E402
from virt.eventloop import ensure_event_loop  # noqa: E402

BENCH = "actions"
LOCAL = "qemu:///system"
OVERHEAD_P50_TARGET_MS = 30.0
POLL_SECONDS = 0.002
WORKER_MS: dict[str, list[float]] = {}
OUTSIDE_WORKER_MS: list[float] = []  # POST to done, less the worker's own time: HTTP, queue, claim, notice
TOTAL_OVERHEAD_MS: list[float] = []  # POST to done, less the action's libvirt calls as the worker timed them


@contextmanager
def bench_guest() -> Iterator[libvirt.virDomain]:
    conn = libvirt.open(LOCAL)
    domain = conn.defineXML(small_guest_xml(f"bench-actions-{uuid.uuid4().hex[:8]}"))
    try:
        yield domain
    finally:
        if domain.isActive():
            domain.destroy()
        domain.undefine()
        conn.close()


@contextmanager
def celery_worker(env: dict[str, str], log_dir: Path) -> Iterator[None]:
    import os

    from tests.stack import VENV_BIN, start_process

    argv = [str(VENV_BIN / "celery"), "-A", "vmsite", "worker", "--loglevel", "INFO", "--concurrency", "2",
            "--without-gossip", "--without-mingle", "--queues", "vmsite", "--hostname", "bench@%h"]
    worker = start_process("worker", argv, log_dir=log_dir, env={**os.environ, **env, "LOG_LEVEL": "INFO"})
    try:
        deadline = time.monotonic() + 30
        while "ready." not in worker.log():
            if worker.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{worker.log()[-3000:]}")
            time.sleep(0.1)
        yield
    finally:
        worker.stop()


def through_vmsite(session, base_url: str, domain_pk: int, action: str) -> tuple[float, float]:
    """(total ms from POST to done, dispatch ms from queued to claimed); the time the worker
    spent on it (claimed to finished) is kept in WORKER_MS."""
    from operations.models import Operation

    started = time.perf_counter()
    response = session.post(f"{base_url}/vms/{domain_pk}/{action}/", allow_redirects=False, timeout=30,
                            data={"csrfmiddlewaretoken": session.cookies["csrftoken"]})
    if response.status_code != 302:
        raise RuntimeError(f"POST {action}: status {response.status_code}")
    operation = Operation.objects.filter(target_type="domain", target_id=domain_pk).latest("created_at")
    while not operation.is_finished:
        time.sleep(POLL_SECONDS)
        operation.refresh_from_db(fields=["state", "started_at", "finished_at", "error", "libvirt_ms"])
    total = (time.perf_counter() - started) * 1000
    if operation.state != "succeeded":
        raise RuntimeError(f"{action} failed: {operation.error}")
    worker = (operation.finished_at - operation.started_at).total_seconds() * 1000
    WORKER_MS.setdefault(action, []).append(worker)
    OUTSIDE_WORKER_MS.append(total - worker)
    TOTAL_OVERHEAD_MS.append(total - operation.libvirt_ms)
    return total, (operation.started_at - operation.created_at).total_seconds() * 1000


def direct(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def figure(operation: str, samples: list[float], **extra: Any) -> dict[str, Any]:
    import statistics

    return {"bench": BENCH, "operation": operation, "samples": len(samples),
            "p50_ms": round(statistics.median(samples), 2), "p95_ms": round(percentile(samples, 0.95), 2), **extra}


def run(cycles: int, work_dir: Path) -> None:
    ensure_event_loop()
    env = {**django_env(work_dir / "data"), "REDIS_URL": "redis://127.0.0.1:6379/14"}
    setup_django(env)
    from domains.models import Domain
    from inventory.reconcile import host_reconcile
    from hosts.services import host_register_local

    host, _ = host_register_local()
    samples: dict[str, list[float]] = {key: [] for key in
                                       ("vmsite_start", "vmsite_stop", "direct_start", "direct_stop", "dispatch",
                                        "overhead_start", "overhead_stop")}
    with bench_guest() as guest, celery_worker(env, work_dir / "logs"), \
            asgi_server(env, work_dir / "logs") as base_url, superuser() as (username, password):
        host_reconcile(host=host, fresh=True)
        domain = Domain.objects.get(host=host, uuid=guest.UUIDString())
        session = logged_in_session(base_url, username, password)
        through_vmsite(session, base_url, domain.pk, "start")  # warm up the worker's connection and paths
        through_vmsite(session, base_url, domain.pk, "force_off")
        for cycle in range(cycles):
            # ABBA order: whichever path goes first meets the previous qemu's teardown, so the two
            # take turns at it.
            if cycle % 2:
                start_total, start_dispatch = through_vmsite(session, base_url, domain.pk, "start")
                stop_total, stop_dispatch = through_vmsite(session, base_url, domain.pk, "force_off")
                direct_start = direct(guest.create)
                direct_stop = direct(guest.destroy)
            else:
                direct_start = direct(guest.create)
                direct_stop = direct(guest.destroy)
                start_total, start_dispatch = through_vmsite(session, base_url, domain.pk, "start")
                stop_total, stop_dispatch = through_vmsite(session, base_url, domain.pk, "force_off")
            samples["direct_start"].append(direct_start)
            samples["direct_stop"].append(direct_stop)
            samples["vmsite_start"].append(start_total)
            samples["vmsite_stop"].append(stop_total)
            samples["dispatch"] += [start_dispatch, stop_dispatch]
            samples["overhead_start"].append(start_total - direct_start)
            samples["overhead_stop"].append(stop_total - direct_stop)
            if (cycle + 1) % 20 == 0:
                progress(f"{cycle + 1}/{cycles} cycles")
    report(samples)


def report(samples: dict[str, list[float]]) -> None:
    import statistics

    for name in ("direct_start", "vmsite_start", "direct_stop", "vmsite_stop", "dispatch"):
        emit(figure(name, samples[name]))
    for action, worker_samples in WORKER_MS.items():
        emit(figure(f"worker_{action}", worker_samples))
    emit(figure("outside_worker", OUTSIDE_WORKER_MS))
    total_overhead = figure("total_overhead", TOTAL_OVERHEAD_MS)
    emit(total_overhead)
    overhead = samples["overhead_start"] + samples["overhead_stop"]
    emit(figure("overhead_start", samples["overhead_start"]))
    emit(figure("overhead_stop", samples["overhead_stop"]))
    line = figure("overhead", overhead, median_difference_ms=round(
        (statistics.median(samples["vmsite_start"]) - statistics.median(samples["direct_start"])
         + statistics.median(samples["vmsite_stop"]) - statistics.median(samples["direct_stop"])) / 2, 2))
    emit(line)
    dispatch = figure("dispatch", samples["dispatch"])
    for name, value in (("dispatch", dispatch["p50_ms"]), ("total_overhead", total_overhead["p50_ms"])):
        emit({"bench": BENCH, "target": f"{name} p50 <= {OVERHEAD_P50_TARGET_MS:g} ms", "value": value,
              "met": value <= OVERHEAD_P50_TARGET_MS})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=100)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    work_dir = Path(tempfile.mkdtemp(prefix="vmsite-bench-actions-"))
    started = time.perf_counter()
    try:
        run(args.cycles, work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        progress(f"wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
