"""Inventory benchmark: reconcile of big hosts, and the all-VMs page over the real ASGI server.

What it measures (TESTING.md, Benchmarks), each figure next to the naive way in the same run:

* reconcile of one host with N persistent guests (vmsite's ``inventory.reconcile.host_reconcile``:
  bulk libvirt read plus a diff applied to the database), the first run (N inserts, and the
  host's capabilities read once) apart from the steady state; against the raw bulk libvirt
  calls alone (target: reconcile <= 2x raw) and against the naive read, ``info()`` and
  ``XMLDesc()`` per domain (target: naive >= 5x reconcile);
* the all-VMs page ``/vms/`` over the web server with hosts x N rows in the database: page 2 and a name
  filter, logged in (target: p95 <= 150 ms each).

How: starts extra libvirt hosts with the test harness (``tests/harness``, indices 60.. on
127.0.0.60..), defines N small guests on each (not started), registers them as TCP hosts in a
throwaway database (SQLite in a temporary ``VMSITE_DATA_DIR``, or ``DATABASE_URL`` when set),
and stops everything it started, by pid, at the end. Needs root, libvirtd, qemu and sshd.
Only loopback is used; the main host's guests (qemu:///system) are never touched.

Run:  .venv/bin/python bench/inventory.py [--hosts 3 --guests 1000 --requests 50]

Output: one JSON line per measurement on stdout, then one line per target (met or not).
Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import libvirt  # noqa: E402
import requests  # noqa: E402

from tests.guests import small_guest_xml  # noqa: E402
from tests.harness.libvirt_hosts import HarnessHost, start_host  # noqa: E402
from virt.eventloop import ensure_event_loop  # noqa: E402

BENCH = "inventory"
FIRST_INDEX = 60
DEFINE_THREADS_PER_HOST = 4
WARMUP_REQUESTS = 5
PAGE_P95_TARGET_MS = 150.0
RAW_RATIO_TARGET = 2.0  # reconcile may cost at most this many times the raw bulk calls
NAIVE_RATIO_TARGET = 5.0  # the naive read must cost at least this many times reconcile

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors still raise


# -- figures -------------------------------------------------------------------------------------

def percentile(samples: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (as numpy's default)."""
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def figure(operation: str, samples_ms: list[float], *, hosts: int, domains: int,
           naive_ms: list[float] | None = None, **extra: Any) -> dict[str, Any]:
    median = statistics.median(samples_ms)
    line: dict[str, Any] = {"bench": BENCH, "operation": operation, "hosts": hosts, "domains": domains,
                            "samples": len(samples_ms), "median_ms": round(median, 2),
                            "p95_ms": round(percentile(samples_ms, 0.95), 2)}
    if naive_ms:
        naive_median = statistics.median(naive_ms)
        line.update(naive_median_ms=round(naive_median, 2), ratio=round(naive_median / median, 2))
    line.update(extra)
    return line


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and its live descendants (nginx's workers, hypercorn's)."""
    total = 0.0
    for candidate in [pid, *_descendants(pid)]:
        try:
            fields = Path(f"/proc/{candidate}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def timed_ms(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


# -- libvirt hosts and guests ----------------------------------------------------------------------

@contextmanager
def harness_hosts(count: int, base_dir: Path) -> Iterator[list[HarnessHost]]:
    """Start extra libvirt hosts; stop every one of them, whatever happens."""
    hosts: list[HarnessHost] = []
    try:
        for index in range(FIRST_INDEX, FIRST_INDEX + count):
            hosts.append(start_host(index, base_dir))
            progress(f"started {hosts[-1].hostname} on {hosts[-1].tcp_uri}")
        yield hosts
    finally:
        for host in hosts:
            try:
                host.stop()
                progress(f"stopped {host.hostname}")
            except Exception as exc:  # keep stopping the others
                progress(f"stopping {host.hostname} failed: {exc}")


def guest_name(host: HarnessHost, i: int) -> str:
    return f"bench-{host.hostname}-{i}"


def define_guests(host: HarnessHost, indices: range) -> None:
    conn = libvirt.open(host.tcp_uri)
    try:
        for i in indices:
            conn.defineXML(small_guest_xml(guest_name(host, i), vnc_listen=host.address))
    finally:
        conn.close()


def define_all_guests(hosts: list[HarnessHost], per_host: int) -> None:
    """A few threads per host, each with its own connection, all hosts at once."""
    chunks = [range(start, per_host, DEFINE_THREADS_PER_HOST) for start in range(DEFINE_THREADS_PER_HOST)]
    with ThreadPoolExecutor(max_workers=len(hosts) * len(chunks)) as executor:
        futures = [executor.submit(define_guests, host, chunk) for host in hosts for chunk in chunks]
        for future in futures:
            future.result()


def raw_bulk_read(conn: libvirt.virConnect, stats_flags: int) -> None:
    """The libvirt calls of virt.inventory.list_domains, without building summaries."""
    conn.getAllDomainStats(stats_flags)
    conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)
    conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART)


def raw_inventory_read(conn: libvirt.virConnect, stats_flags: int) -> None:
    """Every libvirt call a steady-state reconcile makes (domains, pools, networks), nothing else."""
    raw_bulk_read(conn, stats_flags)
    for flags in (0, libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE, libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART):
        pools = conn.listAllStoragePools(flags)
    for pool in pools:
        pool.XMLDesc(0)
        pool.info()
    for flags in (0, libvirt.VIR_CONNECT_LIST_NETWORKS_ACTIVE, libvirt.VIR_CONNECT_LIST_NETWORKS_AUTOSTART,
                  libvirt.VIR_CONNECT_LIST_NETWORKS_TRANSIENT):
        conn.listAllNetworks(flags)


def naive_read(conn: libvirt.virConnect) -> None:
    """Two round trips per domain: the way to avoid."""
    for domain in conn.listAllDomains():
        domain.info()
        domain.XMLDesc()


# -- Django ------------------------------------------------------------------------------------------

def django_env(data_dir: Path) -> dict[str, str]:
    """Settings for this process and for the web server: a throwaway data folder, DATABASE_URL if set."""
    env = {"DJANGO_SETTINGS_MODULE": "vmsite.settings", "VMSITE_DATA_DIR": str(data_dir),
           "ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
           "PYTHONUNBUFFERED": "1"}
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    return env


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("private_data_dir")  # as make run: the web server and Celery refuse a data folder others can read


def register_hosts(hosts: list[HarnessHost]) -> list[Any]:
    from hosts.models import Host

    return [Host.objects.create(name=host.hostname, transport="tcp", address=host.address) for host in hosts]


def remove_registered(rows: list[Any]) -> None:
    """Only matters with a user's DATABASE_URL: the temporary SQLite file goes anyway."""
    from hosts.models import Host

    Host.objects.filter(pk__in=[row.pk for row in rows]).delete()


# -- reconcile -----------------------------------------------------------------------------------------

@dataclass
class HostSamples:
    first: list[float]
    reconcile: list[float]
    raw: list[float]
    raw_inventory: list[float]
    naive: list[float]


def bench_reconcile(hosts: list[HarnessHost], rows: list[Any], runs: int) -> HostSamples:
    """Each run does, per host and side by side: raw bulk calls, vmsite's reconcile, the naive read."""
    from hosts.connection import connect_uri
    from hosts.models import Host
    from inventory.reconcile import host_reconcile
    from virt.connection import pool
    from virt.inventory import DOMAIN_STATS

    def reconcile(row: Any) -> float:
        # As the periodic task does: the Host row freshly loaded (it knows whether capabilities
        # were read already), then one reconcile. Only the reconcile is timed.
        fresh_row = Host.objects.get(pk=row.pk)
        return timed_ms(lambda: host_reconcile(host=fresh_row))

    samples = HostSamples(first=[], reconcile=[], raw=[], raw_inventory=[], naive=[])
    conns = [libvirt.open(host.tcp_uri) for host in hosts]
    try:
        for row in rows:
            pool().get(connect_uri(row))  # connect first: the runs time the work, not the connect
        samples.first = [reconcile(row) for row in rows]
        for run in range(runs):
            for conn, row in zip(conns, rows):
                samples.raw.append(timed_ms(lambda: raw_bulk_read(conn, DOMAIN_STATS)))
                samples.raw_inventory.append(timed_ms(lambda: raw_inventory_read(conn, DOMAIN_STATS)))
                samples.reconcile.append(reconcile(row))
                samples.naive.append(timed_ms(lambda: naive_read(conn)))
            progress(f"reconcile run {run + 1}/{runs} done")
    finally:
        for conn in conns:
            conn.close()
        pool().close_all()
    return samples


def reconcile_figures(samples: HostSamples, hosts: int, domains: int) -> list[dict[str, Any]]:
    reconcile_median = statistics.median(samples.reconcile)
    raw_median = statistics.median(samples.raw)
    inventory_median = statistics.median(samples.raw_inventory)
    return [
        figure("reconcile_first", samples.first, hosts=hosts, domains=domains),
        figure("libvirt_bulk_raw", samples.raw, hosts=hosts, domains=domains),
        figure("libvirt_inventory_raw", samples.raw_inventory, hosts=hosts, domains=domains),
        figure("reconcile", samples.reconcile, hosts=hosts, domains=domains, naive_ms=samples.naive,
               raw_median_ms=round(raw_median, 2), raw_ratio=round(reconcile_median / raw_median, 2),
               inventory_raw_ratio=round(reconcile_median / inventory_median, 2)),
        figure("naive_info_xmldesc", samples.naive, hosts=hosts, domains=domains),
    ]


# -- the all-VMs page ----------------------------------------------------------------------------------

@contextmanager
def asgi_server(env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """The web process on a free loopback port, in its own process group, stopped by pid."""
    with asgi_server_process(env, log_dir) as (base_url, _server):
        yield base_url


ASGI_SERVERS = ("uvicorn", "daphne", "hypercorn")


def asgi_argv(server: str, port: int) -> list[str]:
    """The web process as the Procfile starts it (uvicorn), or another ASGI server the benches
    compare it with (BENCH_ASGI_SERVER; not in requirements.txt: install it, or put it on PYTHONPATH)."""
    from tests.stack import VENV_BIN, asgi_argv as procfile_argv
    from vmsite.bulk_io import WEBSOCKET_MAX_MESSAGE

    python = str(VENV_BIN / "python")
    if server == "daphne":  # with the options it was last run with (bench/README.md)
        return [python, "-m", "daphne", "--websocket-max-message-size", str(WEBSOCKET_MAX_MESSAGE),
                "--websocket-max-frame-size", str(WEBSOCKET_MAX_MESSAGE), "-b", "127.0.0.1", "-p", str(port),
                "vmsite.asgi:application"]
    if server == "hypercorn":  # its websocket messages may be 16 MiB by default
        return [python, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "vmsite.asgi:application"]
    if server != "uvicorn":
        raise ValueError(f"BENCH_ASGI_SERVER={server!r}: one of {', '.join(ASGI_SERVERS)}")
    return procfile_argv(port) + shlex.split(os.environ.get("BENCH_ASGI_OPTIONS", ""))


def asgi_server_name() -> str:
    return os.environ.get("BENCH_ASGI_SERVER", "uvicorn")


@contextmanager
def asgi_server_process(env: dict[str, str], log_dir: Path):
    """asgi_server, yielding (base URL, the server's StackProcess)."""
    from tests.stack import free_port, port_open, start_process

    name = asgi_server_name()
    port = free_port()
    server = start_process(name, asgi_argv(name, port), log_dir=log_dir, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{server.log()[-3000:]}")
            time.sleep(0.1)
        progress(f"{name} pid {server.pid} on 127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.stop()
        progress(f"stopped {name} pid {server.pid}")


@contextmanager
def superuser() -> Iterator[tuple[str, str]]:
    """A throwaway administrator, removed afterwards (it matters with a user's DATABASE_URL)."""
    from django.contrib.auth import get_user_model

    username, password = f"bench-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    user = get_user_model().objects.create_superuser(username, password=password)
    try:
        yield username, password
    finally:
        user.delete()


def logged_in_session(base_url: str, username: str, password: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{base_url}/login/", timeout=30).raise_for_status()
    response = session.post(f"{base_url}/login/", timeout=30, data={
        "username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    response.raise_for_status()
    if "sessionid" not in session.cookies:
        raise RuntimeError(f"login failed (status {response.status_code}, at {response.url})")
    return session


ROW_RE = re.compile(r"<tr data-domain-uuid=")


def time_page(session: requests.Session, url: str, count: int, expected_rows: int) -> list[float]:
    def get() -> None:
        response = session.get(url, timeout=30, allow_redirects=False)
        response.raise_for_status()
        rows = len(ROW_RE.findall(response.text))
        if response.status_code != 200 or rows != expected_rows:
            raise RuntimeError(f"{url}: status {response.status_code}, {rows} rows, expected {expected_rows}")

    for _ in range(WARMUP_REQUESTS):
        get()
    return [timed_ms(get) for _ in range(count)]


def bench_pages(env: dict[str, str], log_dir: Path, hosts: list[HarnessHost], per_host: int,
                count: int) -> list[dict[str, Any]]:
    from domains.models import Domain
    from domains.views import PAGE_SIZE

    total = Domain.objects.count()
    name_filter = f"bench-{hosts[min(1, len(hosts) - 1)].hostname}-1"
    filtered = sum(1 for i in range(per_host) if str(i).startswith("1"))
    with superuser() as (username, password), asgi_server(env, log_dir) as base_url:
        session = logged_in_session(base_url, username, password)
        pages = [("vms_page_2", "/vms/?page=2", min(PAGE_SIZE, max(0, total - PAGE_SIZE)), {}),
                 ("vms_name_filter", f"/vms/?q={name_filter}", min(PAGE_SIZE, filtered), {"query": name_filter,
                                                                                           "matches": filtered})]
        return [figure(operation, time_page(session, base_url + path, count, rows), hosts=len(hosts),
                       domains=total, rows=rows, **extra)
                for operation, path, rows, extra in pages]


# -- targets -----------------------------------------------------------------------------------------------

def target_lines(reconcile: dict[str, Any], pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def line(target: str, value: float, met: bool) -> dict[str, Any]:
        return {"bench": BENCH, "target": target, "value": value, "met": met}

    lines = [
        line(f"reconcile / raw domain calls alone <= {RAW_RATIO_TARGET:g}x (medians)", reconcile["raw_ratio"],
             reconcile["raw_ratio"] <= RAW_RATIO_TARGET),
        line(f"reconcile / every raw call reconcile makes (domains, pools, networks) <= {RAW_RATIO_TARGET:g}x "
             "(medians)", reconcile["inventory_raw_ratio"], reconcile["inventory_raw_ratio"] <= RAW_RATIO_TARGET),
        line(f"naive / reconcile >= {NAIVE_RATIO_TARGET:g}x (medians)", reconcile["ratio"],
             reconcile["ratio"] >= NAIVE_RATIO_TARGET),
    ]
    lines += [line(f"{page['operation']} p95 <= {PAGE_P95_TARGET_MS:g} ms", page["p95_ms"],
                   page["p95_ms"] <= PAGE_P95_TARGET_MS) for page in pages]
    return lines


# -- main ------------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=3, help="extra libvirt hosts (default 3)")
    parser.add_argument("--guests", type=int, default=1000, help="persistent guests per host (default 1000)")
    parser.add_argument("--requests", type=int, default=50, help="timed GETs per page (default 50)")
    parser.add_argument("--runs", type=int, default=7, help="steady-state reconcile runs per host (default 7)")
    args = parser.parse_args(argv)
    if not 1 <= args.hosts <= 100 or args.guests < 1 or args.requests < 1 or args.runs < 1:
        parser.error("--hosts must be 1..100; --guests, --requests and --runs at least 1")
    return args


def run(args: argparse.Namespace, work_dir: Path) -> None:
    ensure_event_loop()  # before any connection opens, as in vmsite itself
    env = django_env(work_dir / "data")
    with harness_hosts(args.hosts, work_dir / "hosts") as hosts:
        started = time.perf_counter()
        define_all_guests(hosts, args.guests)
        progress(f"defined {args.hosts} x {args.guests} guests in {time.perf_counter() - started:.1f} s")
        setup_django(env)
        rows = register_hosts(hosts)
        try:
            samples = bench_reconcile(hosts, rows, args.runs)
            reconcile_lines = reconcile_figures(samples, args.hosts, args.guests)
            for line in reconcile_lines:
                emit(line)
            page_lines = bench_pages(env, work_dir / "logs", hosts, args.guests, args.requests)
            for line in page_lines:
                emit(line)
        finally:
            remove_registered(rows)
    reconcile_line = next(line for line in reconcile_lines if line["operation"] == "reconcile")
    for line in target_lines(reconcile_line, page_lines):
        emit(line)


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))  # run the finally blocks
    work_dir = Path(tempfile.mkdtemp(prefix="vmsite-bench-"))
    started = time.perf_counter()
    try:
        run(args, work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        progress(f"wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
