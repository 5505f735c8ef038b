"""Listener capacity: one listener process watching N harness hosts with M running guests each.

What it measures, with the listener (manage.py listen) as in production and its own redis-server:

* `cpu_idle`: the listener's CPU (% of one core) while it only samples graphs (every
  --sample-seconds) and keeps its connections, over --seconds;
* `cpu_events`: the same with suspend/resume calls at --rate per second spread over every guest;
* `event_lag`: a libvirt lifecycle event at the bench's own libvirt client -> the listener's live
  message at a Redis subscriber of the bench (refetch, store, publish), p50/p95/max, and how many
  messages never came;
* `graph_round`: one host's graph round inside the listener (read every VM's counters, store the
  rows, publish), p50/p95/max, from the listener's `listener.rounds` log lines;
* `graph_period`: the time between two graph messages of one host (--sample-seconds when the
  listener keeps up);
* `memory`: what the guests and the harness hosts cost the machine (bench/memory.py): per qemu
  process the median RSS, PSS and USS, per host its daemons' PSS, and the drop of MemAvailable per
  guest (what limits the size on this machine).

The guests are started, then paused: a diskless guest spinning in SeaBIOS costs about 3 % of a
core, so a few hundred of them running would take the whole machine, which other work shares, and
measure qemu rather than the listener. A paused guest is still an active domain: libvirt reads the
same counters for it, and the listener samples it and hears its events as a running one's. The
events are each guest in turn resumed and paused again.

Memory: the guests are lean (no video, no USB controller: tests/guests.py), their qemu processes
get no transparent huge pages (bench/memory.py); --no-lean starts them as the tests do, for the
memory before. The bench stops, removing every guest, if the guests started so far project that
the rest would leave less than --reserve-gib of MemAvailable, or if MemAvailable falls below
--floor-gib.

Run:  .venv/bin/python bench/listener.py --hosts 20 --guests 50 [--first-index 144 --seconds 60]
Needs root; starts --hosts harness libvirt hosts from --first-index, their guests (diskless, 32 MiB,
lean, tests/guests.py), a redis-server and the listener, with a throwaway SQLite database
(DATABASE_URL is honoured when set: use PostgreSQL for figures that mean anything); stops
everything it started.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.events import PAUSED, RUNNING, Event, EventClock, Guest, latencies, redis_server, start_in  # noqa: E402
from bench.inventory import django_env, emit, percentile, progress, setup_django  # noqa: E402
from bench.memory import MemoryGuard, MemoryLow, disable_transparent_hugepages, harness_memory  # noqa: E402

BENCH = "listener"
GIB = 1024  # MiB
LEAST_GUEST_COST_MIB = 11.0  # a lean guest, its kernel memory and its host's daemons' growth (bench/README.md)
START_THREADS = 3  # hosts whose guests start at once (one after another on each): a moderate pace
ROUND_LINE = re.compile(r"host (\d+): graph round of (\d+) rows in ([0-9.]+) ms")


class Tap:
    """The listener's live messages at a Redis subscriber: VM states (for the lag) and graph rounds."""

    def __init__(self, redis_url: str, channel: str) -> None:
        import redis

        self.states: list[tuple[int, float, int, int]] = []
        self.graphs: dict[int, list[float]] = {}
        self.pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(**{channel: self._on_message})
        self.thread = self.pubsub.run_in_thread(sleep_time=0.5, daemon=True)

    def _on_message(self, item: dict) -> None:
        arrived = time.monotonic()
        message = json.loads(item["data"])
        if message.get("type") == "domain" and "state" in message:
            self.states.append((-1, arrived, message["id"], message["state"]))
        elif message.get("type") == "metrics":
            self.graphs.setdefault(message["id"], []).append(arrived)

    def reset(self) -> None:
        self.states, self.graphs = [], {}

    def stop(self) -> None:
        self.thread.stop()
        self.thread.join(timeout=5)
        self.pubsub.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def figure(operation: str, samples: list[float], unit: str = "ms", **extra: Any) -> dict[str, Any]:
    if not samples:
        return {"bench": BENCH, "operation": operation, "samples": 0, **extra}
    return {"bench": BENCH, "operation": operation, **extra, "samples": len(samples),
            f"p50_{unit}": round(statistics.median(samples), 2), f"p95_{unit}": round(percentile(samples, 0.95), 2),
            f"max_{unit}": round(max(samples), 2)}


def start_hosts(first: int, count: int, base: Path, stack: ExitStack) -> list:
    from tests.harness.libvirt_hosts import start_host

    def start(index: int):
        host = start_host(index, base)
        progress(f"started {host.hostname} on {host.tcp_uri}")
        return host

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(start, index) for index in range(first, first + count)]
    hosts = [future.result() for future in futures if future.exception() is None]
    for host in hosts:
        stack.callback(host.stop)
    for future in futures:
        future.result()  # raises the first failure, once every started host will be stopped
    return hosts


def start_guests(host, count: int, guard: MemoryGuard, lean: bool, domains: list) -> None:
    """Start `count` guests on `host`, each added to `domains` as soon as it is defined, so that
    all of them are removed whatever happens next."""
    import libvirt

    from tests.guests import small_guest_xml

    conn = libvirt.open(host.tcp_uri)
    for number in range(count):
        xml = small_guest_xml(f"bench-listener-{host.hostname}-{number}", vnc_listen=host.address, lean=lean)
        domain = conn.defineXML(xml)
        domains.append(domain)
        domain.create()
        domain.suspend()  # see the module's docstring: paused, a guest costs the machine no CPU
        guard.guest_started()


def start_all_guests(hosts: list, count: int, guard: MemoryGuard, lean: bool, stack: ExitStack) -> list:
    started = time.monotonic()
    domains: list = []
    stack.callback(remove_all, domains)  # in parallel, before the hosts stop: their stop() does one at a time
    with ThreadPoolExecutor(START_THREADS) as pool:
        for future in [pool.submit(start_guests, host, count, guard, lean, domains) for host in hosts]:
            future.result()
    progress(f"{len(domains)} guests running after {time.monotonic() - started:.0f} s")
    by_host = {host.hostname: number for number, host in enumerate(hosts)}
    return sorted(domains, key=lambda d: (by_host[d.name().split("-")[2]], int(d.name().rsplit("-", 1)[1])))


def wait_watched(domain_count: int, host_count: int, timeout: float) -> None:
    from domains.models import Domain
    from hosts.models import Host

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        online = Host.objects.filter(status="online").count()
        stored = Domain.objects.filter(state=PAUSED).count()
        if online == host_count and stored == domain_count:
            return
        time.sleep(1)
    raise RuntimeError(f"the listener did not watch every host in {timeout:.0f} s "
                       f"({online}/{host_count} online, {stored}/{domain_count} VMs stored)")


def fire(guests: list[Guest], seconds: float, rate: float) -> list[Event]:
    """`rate` lifecycle events a second for `seconds`: each guest in turn resumed, then suspended
    again, so that at most one guest runs at a time."""
    events: list[Event] = []
    start = time.monotonic()
    number = 0
    order = random.sample(guests, len(guests))
    while time.monotonic() - start < seconds:
        delay = start + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        guest = order[(number // 2) % len(order)]
        called = time.monotonic()
        (guest.domain.resume if guest.paused else guest.domain.suspend)()
        guest.paused = not guest.paused
        events.append(Event(guest=guest, state=PAUSED if guest.paused else RUNNING, called=called))
        number += 1
    return events


def round_times(log: str, since_line: int) -> list[float]:
    return [float(match.group(3)) for line in log.splitlines()[since_line:] if (match := ROUND_LINE.search(line))]


def periods(graphs: dict[int, list[float]]) -> list[float]:
    return [(later - earlier) * 1000 for times in graphs.values() for earlier, later in zip(times, times[1:])]


def run(args: argparse.Namespace, work: Path) -> None:
    import libvirt

    from virt.eventloop import ensure_event_loop

    ensure_event_loop()
    env = django_env(work / "data")
    setup_django(env)
    from hosts.models import Host

    if args.lean:
        disable_transparent_hugepages()
    with ExitStack() as stack:
        hosts = start_hosts(args.first_index, args.hosts, work / "hosts", stack)
        guard = MemoryGuard(hosts=hosts, floor_mib=args.floor_gib * GIB, reserve_mib=args.reserve_gib * GIB,
                            total_guests=args.hosts * args.guests, least_cost_mib=LEAST_GUEST_COST_MIB)
        stack.callback(guard.stop)
        domains = start_all_guests(hosts, args.guests, guard, args.lean, stack)
        memory = {"bench": BENCH, "operation": "memory", "hosts": len(hosts), "guests": len(domains), "lean": args.lean}
        emit({**memory, "after": "start", **harness_memory(hosts), **guard.figure()})
        rows = {host.address: Host.objects.create(name=host.hostname, transport="tcp", address=host.address)
                for host in hosts}
        stack.callback(lambda: Host.objects.filter(pk__in=[row.pk for row in rows.values()]).delete())
        redis_url = stack.enter_context(redis_server(work / "logs"))
        channel = f"vmsite.live.bench-{os.getpid()}"
        tap = Tap(redis_url, channel)
        stack.callback(tap.stop)
        listener_env = {**os.environ, **env, "REDIS_URL": redis_url, "LIVE_CHANNEL": channel,
                        "GRAPH_SAMPLE_SECONDS": str(args.sample_seconds), "LOG_LEVEL": "WARNING",
                        "DJANGO_SETTINGS_MODULE": "bench.listener_settings"}
        from tests.stack import VENV_BIN

        listener = start_in(ROOT, "listener", [str(VENV_BIN / "python"), "manage.py", "listen"], work / "logs",
                            listener_env)
        stack.callback(listener.stop)
        connected = time.monotonic()
        wait_watched(len(domains), len(hosts), timeout=args.settle_timeout)
        emit({"bench": BENCH, "operation": "first_reconcile", "hosts": len(hosts), "vms": len(domains),
              "seconds": round(time.monotonic() - connected, 1)})

        connections = {host.address: libvirt.open(host.tcp_uri) for host in hosts}
        stack.callback(lambda: [conn.close() for conn in connections.values()])
        clocks = {address: EventClock(conn) for address, conn in connections.items()}
        from domains.models import Domain

        pks = {str(uuid): pk for uuid, pk in Domain.objects.values_list("uuid", "pk")}
        guests, address_of = [], {}
        for number, host in enumerate(hosts):
            for domain in domains[number * args.guests:(number + 1) * args.guests]:
                guest = Guest(domain=connections[host.address].lookupByUUIDString(domain.UUIDString()),
                              pk=pks[domain.UUIDString()], paused=True)
                guests.append(guest)
                address_of[guest.pk] = host.address
        size = {"hosts": len(hosts), "guests_per_host": args.guests, "sample_seconds": args.sample_seconds}

        time.sleep(2 * args.sample_seconds)  # past the first rounds after the reconcile
        for name, rate in (("idle", 0.0), ("events", args.rate)):
            tap.reset()
            log_lines = len(listener.log().splitlines())
            cpu_before, wall_before, load_before = cpu_seconds(listener.pid), time.monotonic(), os.getloadavg()[0]
            events = fire(guests, args.seconds, rate) if rate else time.sleep(args.seconds) or []
            cpu = (cpu_seconds(listener.pid) - cpu_before) / (time.monotonic() - wall_before) * 100
            emit({"bench": BENCH, "operation": f"cpu_{name}", **size, "events_per_s": rate,
                  "cpu_percent_of_one_core": round(cpu, 1), "load_average_1m": round(os.getloadavg()[0], 2),
                  "load_average_1m_before": round(load_before, 2)})
            emit(figure("graph_round", round_times(listener.log(), log_lines), while_=name, **size))
            emit(figure("graph_period", periods(tap.graphs), while_=name, **size))
            if events:
                for event in events:
                    event.arrived = clocks[address_of[event.guest.pk]].first_after(
                        event.guest.domain.UUIDString(), event.state, event.called)
                time.sleep(2)
                samples, missing = latencies(events, tap.states, 1)
                emit(figure("event_lag", samples, **size, events_per_s=rate, missing=missing))
        emit({**memory, "after": "events", **harness_memory(hosts), **guard.figure()})
        if "Traceback" in listener.log():
            progress("the listener logged a traceback: see " + str(listener.log_path))


def remove_all(domains: list) -> None:
    import libvirt

    def remove(domain) -> None:
        try:
            domain.destroy()
            domain.undefine()
        except libvirt.libvirtError:
            pass

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(remove, domains))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--guests", type=int, default=10, help="active (paused) guests per host")
    parser.add_argument("--first-index", type=int, default=int(os.environ.get("VMSITE_HARNESS_FIRST_INDEX", 144)))
    parser.add_argument("--seconds", type=float, default=60, help="length of each measured window")
    parser.add_argument("--rate", type=float, default=10.0, help="suspend/resume calls per second")
    parser.add_argument("--sample-seconds", type=int, default=5, help="GRAPH_SAMPLE_SECONDS")
    parser.add_argument("--settle-timeout", type=float, default=300)
    parser.add_argument("--no-lean", dest="lean", action="store_false",
                        help="guests as the tests make them, with transparent huge pages: the memory before")
    parser.add_argument("--reserve-gib", type=float, default=5.0,
                        help="start no more guests once the rest would leave less MemAvailable than this")
    parser.add_argument("--floor-gib", type=float, default=3.0,
                        help="stop the bench, removing every guest, if MemAvailable falls below this")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vmsite-bench-listener-"))
    started = time.perf_counter()
    try:
        run(args, work)
    except (MemoryLow, KeyboardInterrupt) as stopped:
        reason = str(stopped) or "interrupted (MemAvailable under --floor-gib, or Ctrl-C)"
        progress(f"stopped, every guest removed: {reason}")
        raise SystemExit(1)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        progress(f"wall time {time.perf_counter() - started:.1f} s; work folder {work}")


if __name__ == "__main__":
    main()
