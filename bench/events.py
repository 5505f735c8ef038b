"""Live latency benchmark: from a libvirt lifecycle event to the message at the pages' sockets.

What it measures (TESTING.md, Benchmarks): running guests on a harness libvirt host are suspended
and resumed; the bench's own libvirt connection receives each lifecycle event (the direct way: a
libvirt client told at once) while vmsite's path runs as in production: the listener process
(manage.py listen) refetches the VM, stores it and publishes; the web server's live consumers send it to
every socket of `/ws/live/`. Sockets are opened by client processes (asyncio, `--processes` of
them, so that no single client's GIL dominates) and stamp each message on arrival with the
machine-wide monotonic clock.

* `latency`: event at the bench's libvirt client -> message at a socket, every socket of every
  event, with 1, 50 and 200 sockets (`--clients`), events `--interval` apart; p50/p95/max;
* `call_to_event`: the suspend/resume call's start -> the event at the bench's libvirt client;
* `published`: event -> the message at a Redis subscriber of the bench's own (the listener's part:
  refetch, store, publish); `latency` less this is the web process's fan-out and the clients'
  reading (only for code that publishes on Redis pub/sub, events/hub.py);
* `sustained`: 200 sockets, events at rising rates (spread over the guests) until p95 passes
  100 ms; the highest rate that stayed under is the figure.

`--baseline-code DIR` runs the same measurements, interleaved round by round, against a second
copy of the code (e.g. `git archive main | tar -x -C DIR`): listener and web server start from DIR,
everything else (host, guests, database, clients) is shared, so before/after is measured in one
run on the same machine load. Lines then carry `"code": "current"` or `"code": "baseline"`.

BENCH_ASGI_SERVER=daphne or hypercorn runs that ASGI server instead of uvicorn (bench/inventory.py);
BENCH_BASELINE_ASGI_SERVER, the baseline's server only (main before the switch: daphne).

Run:  .venv/bin/python bench/events.py [--clients 1,50,200 --processes 10 --events 40]
Needs root; starts a harness libvirt host (`--index`), its own redis-server on a free loopback port,
the listener and the web server, with a throwaway SQLite database (DATABASE_URL is honoured when set);
stops everything it started, by pid.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH = "events"
TARGET_P95_MS = 50.0
SUSTAINED_LIMIT_MS = 100.0
OPEN_AT_ONCE = 2  # sockets each client process opens at a time
PAUSED, RUNNING = 3, 1  # libvirt's VIR_DOMAIN_PAUSED / VIR_DOMAIN_RUNNING, as the messages carry them


# -- client processes: sockets with a minimal asyncio websocket client ---------------------------------

async def _ws_connect(port: int, cookie: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws/live/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Origin: http://127.0.0.1:{port}\r\nCookie: sessionid={cookie}\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status_line:
        raise RuntimeError(f"socket refused: {status_line!r}")
    opcode, payload = await _ws_frame(reader)
    if json.loads(payload) != {"type": "hello"}:
        raise RuntimeError(f"unexpected first message {payload!r}")
    return reader, writer


async def _ws_connect_retrying(port: int, cookie: str, attempts: int = 5) -> tuple[asyncio.StreamReader,
                                                                                    asyncio.StreamWriter]:
    """A busy machine can make the web server drop a handshake: try again, as a page does."""
    for attempt in range(attempts):
        try:
            return await _ws_connect(port, cookie)
        except (ConnectionError, asyncio.IncompleteReadError, RuntimeError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


async def _ws_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One frame from the server (unmasked; the server sends small unfragmented messages)."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def _ws_read(index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   records: list[tuple[int, float, int, int]]) -> None:
    """Stamp every domain message at arrival: (socket, monotonic time, VM id, state)."""
    try:
        while True:
            opcode, payload = await _ws_frame(reader)
            arrived = time.monotonic()
            if opcode == 0x9:  # ping: answer, as a browser does
                writer.write(_masked_frame(0xA, payload))
            elif opcode == 0x8:
                return
            elif opcode == 0x1:
                message = json.loads(payload)
                if message.get("type") == "domain":
                    records.append((index, arrived, message["id"], message["state"]))
    except (asyncio.IncompleteReadError, ConnectionError):
        return


def client_process(pipe, port: int, first_index: int) -> None:
    """Serve the bench's commands: open N sockets, hand over what they received, close them."""
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        sockets: list[tuple[asyncio.StreamWriter, asyncio.Task]] = []
        records: list[tuple[int, float, int, int]] = []
        while True:
            command, argument = await loop.run_in_executor(None, pipe.recv)
            if command == "open":
                cookies: list[str] = argument
                for start in range(0, len(cookies), OPEN_AT_ONCE):  # as pages open: not all in one instant
                    batch = cookies[start:start + OPEN_AT_ONCE]
                    for reader, writer in await asyncio.gather(*(_ws_connect_retrying(port, cookie) for cookie in batch)):
                        task = asyncio.create_task(_ws_read(first_index + len(sockets), reader, writer, records))
                        sockets.append((writer, task))
                pipe.send(len(sockets))
            elif command == "collect":
                pipe.send(list(records))
                records.clear()
            elif command == "close":
                for writer, task in sockets:
                    task.cancel()
                    writer.close()
                sockets.clear()
                records.clear()
                pipe.send(0)
            elif command == "exit":
                return

    asyncio.run(serve())


@dataclass
class Clients:
    """`processes` client processes; sockets are spread evenly over them."""

    processes: int
    port: int = 0
    pipes: list[Any] = field(default_factory=list)
    workers: list[Any] = field(default_factory=list)

    def start(self, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        for number in range(self.processes):
            parent, child = context.Pipe()
            worker = context.Process(target=client_process, args=(child, port, number * 100_000), daemon=True)
            worker.start()
            self.pipes.append(parent)
            self.workers.append(worker)

    def open(self, cookies: list[str]) -> None:
        shares = [cookies[number::self.processes] for number in range(self.processes)]
        for pipe, share in zip(self.pipes, shares):
            pipe.send(("open", share))
        opened = sum(pipe.recv() for pipe in self.pipes)
        if opened != len(cookies):
            raise RuntimeError(f"{opened} sockets open, {len(cookies)} wanted")

    def collect(self) -> list[tuple[int, float, int, int]]:
        for pipe in self.pipes:
            pipe.send(("collect", None))
        return [record for pipe in self.pipes for record in pipe.recv()]

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(("close", None))
        for pipe in self.pipes:
            pipe.recv()

    def stop(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("exit", None))
            except OSError:
                pass
        for worker in self.workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()


# -- the stack ---------------------------------------------------------------------------------------

@contextmanager
def redis_server(log_dir: Path) -> Iterator[str]:
    """A redis-server of the bench's own on a free loopback port: no other client shares it."""
    from tests.stack import free_port, port_open, start_process

    port = free_port()
    server = start_process(f"redis-{port}", ["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                                             "--save", "", "--appendonly", "no"], log_dir=log_dir, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 15
        while not port_open("127.0.0.1", port):
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{server.log()[-2000:]}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.stop()


def start_in(code: Path, name: str, argv: list[str], log_dir: Path, env: dict[str, str]):
    """tests.stack.start_process, but from the code in `code` (the baseline's copy, or this one)."""
    import subprocess

    from tests.stack import StackProcess

    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(argv, cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    return StackProcess(name=name, process=process, log_path=log_path)


@contextmanager
def live_stack(code: Path, server: str, env: dict[str, str], log_dir: Path) -> Iterator[tuple[int, str]]:
    """Redis, the listener and the web server `server`, all from `code`; yields its port and the Redis URL."""
    from bench.inventory import progress
    from bench.inventory import asgi_argv
    from tests.stack import VENV_BIN, free_port, port_open

    with redis_server(log_dir) as redis_url:
        stack_env = {**os.environ, **env, "REDIS_URL": redis_url}
        listener = start_in(code, f"listener-{code.name}", [str(VENV_BIN / "python"), "manage.py", "listen"],
                            log_dir, stack_env)
        port = free_port()
        web = start_in(code, f"{server}-{code.name}", asgi_argv(server, port), log_dir, stack_env)
        try:
            deadline = time.monotonic() + 30
            while not port_open("127.0.0.1", port):
                for process in (listener, web):
                    if process.process.poll() is not None:
                        raise RuntimeError(f"{process.name} exited:\n{process.log()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server} did not listen within 30 s")
                time.sleep(0.1)
            progress(f"{code.name}: redis-server, listener pid {listener.pid}, {server} pid {web.pid} "
                     f"on port {port}")
            yield port, redis_url
        finally:
            for process in (web, listener):
                process.stop()


# -- events ------------------------------------------------------------------------------------------

@dataclass
class Guest:
    domain: Any  # libvirt.virDomain
    pk: int
    paused: bool = False


class EventClock:
    """The bench's own libvirt client: when each guest's suspended/resumed event arrived here."""

    def __init__(self, conn) -> None:
        import libvirt

        self.arrivals: dict[tuple[str, int], list[float]] = {}
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

        def on_lifecycle(_conn, domain, event, _detail, _opaque) -> None:
            state = {libvirt.VIR_DOMAIN_EVENT_SUSPENDED: PAUSED, libvirt.VIR_DOMAIN_EVENT_RESUMED: RUNNING}.get(event)
            if state is not None:
                with self.changed:
                    self.arrivals.setdefault((domain.UUIDString(), state), []).append(time.monotonic())
                    self.changed.notify_all()

        self.callback = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)

    def first_after(self, uuid: str, state: int, since: float, timeout: float = 5.0) -> float | None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                later = [t for t in self.arrivals.get((uuid, state), ()) if t >= since]
                if later:
                    return min(later)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.changed.wait(remaining)


@dataclass
class Event:
    guest: Guest
    state: int
    called: float
    arrived: float | None = None


def fire_events(guests: list[Guest], count: int, rate: float) -> list[Event]:
    """`count` suspend/resume calls at `rate` per second, taking the guests in turn."""
    events: list[Event] = []
    start = time.monotonic()
    for number in range(count):
        due = start + number / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        guest = guests[number % len(guests)]
        called = time.monotonic()
        if guest.paused:
            guest.domain.resume()
        else:
            guest.domain.suspend()
        guest.paused = not guest.paused
        events.append(Event(guest=guest, state=PAUSED if guest.paused else RUNNING, called=called))
    return events


def latencies(events: list[Event], records: list[tuple[int, float, int, int]], sockets: int) -> tuple[list[float], int]:
    """Per event and socket, the first message about that VM in that state after the call, before the
    next call that asks for the same state of the same VM; (latencies in ms, messages missing)."""
    by_socket: dict[tuple[int, int, int], list[float]] = {}
    for socket_index, arrived, vm, state in records:
        by_socket.setdefault((socket_index, vm, state), []).append(arrived)
    for times in by_socket.values():
        times.sort()
    socket_ids = sorted({record[0] for record in records})
    samples: list[float] = []
    missing = 0
    next_same: dict[tuple[int, int], float] = {}
    untils: list[float] = []
    for event in reversed(events):  # the next call that asks for the same state of the same VM
        untils.append(next_same.get((event.guest.pk, event.state), float("inf")))
        next_same[(event.guest.pk, event.state)] = event.called
    untils.reverse()
    for event, until in zip(events, untils):
        reference = event.arrived if event.arrived is not None else event.called
        for socket_index in socket_ids:
            match = next((t for t in by_socket.get((socket_index, event.guest.pk, event.state), ())
                          if event.called <= t < until), None)
            if match is None:
                missing += 1
            else:
                samples.append((match - reference) * 1000)
        missing += (sockets - len(socket_ids))
    return samples, missing


class PublishedTap:
    """A subscriber of the live channel in the bench process: when each message left the listener
    (published), so that a latency splits into the listener's part and the web process's fan-out.
    Only for code that publishes on Redis pub/sub (events/hub.py); None otherwise."""

    def __init__(self, redis_url: str, channel: str) -> None:
        import redis

        self.records: list[tuple[int, float, int, int]] = []
        self.pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(**{channel: self._on_message})
        self.thread = self.pubsub.run_in_thread(sleep_time=0.5, daemon=True)

    def _on_message(self, item: dict) -> None:
        arrived = time.monotonic()
        message = json.loads(item["data"])
        if message.get("type") == "domain":
            self.records.append((-1, arrived, message["id"], message["state"]))

    def collect(self) -> list[tuple[int, float, int, int]]:
        records, self.records = self.records, []
        return records

    def stop(self) -> None:
        self.thread.stop()
        self.thread.join(timeout=5)
        self.pubsub.close()


@dataclass
class Measured:
    latency: list[float]
    call_to_event: list[float]
    published: list[float]  # event -> the message leaves the listener (the tap), when tapped
    missing: int


def measure(clients: Clients, guests: list[Guest], clock: EventClock, count: int, rate: float,
            sockets: int, tap: PublishedTap | None) -> Measured:
    clients.collect()  # drop what came before
    if tap is not None:
        tap.collect()
    events = fire_events(guests, count, rate)
    for event in events:
        event.arrived = clock.first_after(event.guest.domain.UUIDString(), event.state, event.called)
    time.sleep(1.5)  # the last events' messages are in by then (later ones count as missing)
    samples, missing = latencies(events, clients.collect(), sockets)
    published = latencies(events, tap.collect(), 1)[0] if tap is not None else []
    call_to_event = [(e.arrived - e.called) * 1000 for e in events if e.arrived is not None]
    return Measured(latency=samples, call_to_event=call_to_event, published=published, missing=missing)


def server_of(code_name: str) -> str:
    """The web server a code runs under: BENCH_ASGI_SERVER, or for the baseline
    BENCH_BASELINE_ASGI_SERVER when set (e.g. main's daphne against this code's uvicorn)."""
    from bench.inventory import asgi_server_name

    if code_name == "baseline":
        return os.environ.get("BENCH_BASELINE_ASGI_SERVER", asgi_server_name())
    return asgi_server_name()


def figure(operation: str, samples: list[float], **extra: Any) -> dict[str, Any]:
    from bench.inventory import percentile

    if not samples:
        return {"bench": BENCH, "operation": operation, "samples": 0, **extra}
    return {"bench": BENCH, "operation": operation, **extra, "samples": len(samples),
            "p50_ms": round(statistics.median(samples), 2), "p95_ms": round(percentile(samples, 0.95), 2),
            "max_ms": round(max(samples), 2), "server": server_of(extra.get("code", "current"))}


# -- the run -----------------------------------------------------------------------------------------

@contextmanager
def bench_guests(uri: str, count: int, listen: str) -> Iterator[list[Any]]:
    import libvirt

    from tests.guests import small_guest_xml

    conn = libvirt.open(uri)
    domains = []
    try:
        for number in range(count):
            domain = conn.defineXML(small_guest_xml(f"bench-events-{os.getpid()}-{number}", vnc_listen=listen))
            domains.append(domain)
            domain.create()
        yield domains
    finally:
        for domain in domains:
            try:
                if domain.isActive():
                    domain.destroy()
                domain.undefine()
            except libvirt.libvirtError:
                pass
        conn.close()


def session_cookies(count: int) -> list[str]:
    """Sessions of an administrator and of a viewer granted the host, alternately (both kinds of
    socket: one sees everything, the other has its scope checked per message)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.models import Grant, Role
    from hosts.models import Host

    model = get_user_model()
    suffix = os.getpid()
    admin = model.objects.create_superuser(f"bench-admin-{suffix}", password=None)
    viewer = model.objects.create_user(f"bench-viewer-{suffix}", password=None)
    Grant.objects.create(user=viewer, host=Host.objects.get(), role=Role.VIEWER)
    cookies = []
    for number in range(count):
        client = Client()
        client.force_login(admin if number % 2 == 0 else viewer)
        cookies.append(client.cookies["sessionid"].value)
    return cookies


def wait_for_listener(domains: list[Any], since, timeout: float = 120) -> dict[str, int]:
    """Wait until the stack's listener has reconciled the host (so it is watching it: its event
    callbacks are registered first) and stored every guest as libvirt has it; uuid -> row id."""
    from domains.models import Domain
    from hosts.models import Host

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wanted = {domain.UUIDString(): domain.state()[0] for domain in domains}
        rows = {str(uuid): (pk, state) for uuid, pk, state in
                Domain.objects.filter(uuid__in=list(wanted)).values_list("uuid", "pk", "state")}
        synced = Host.objects.filter(synced_at__gte=since).exists()
        if synced and all(rows.get(uuid, (None, None))[1] == state for uuid, state in wanted.items()):
            return {uuid: pk for uuid, (pk, _state) in rows.items()}
        time.sleep(0.2)
    raise RuntimeError("the listener did not reconcile the bench's host in time")


def run(args: argparse.Namespace, work_dir: Path) -> None:
    import libvirt

    from bench.inventory import django_env, emit, progress, setup_django
    from tests.harness.libvirt_hosts import start_host
    from virt.eventloop import ensure_event_loop

    ensure_event_loop()
    env = django_env(work_dir / "data")
    setup_django(env)
    from hosts.models import Host

    codes = [("current", ROOT)]
    if args.baseline_code:
        codes.append(("baseline", Path(args.baseline_code).resolve()))
    sizes = [int(size) for size in args.clients.split(",")]
    results: dict[tuple[str, str], list[float]] = {}
    missing: dict[tuple[str, str], int] = {}
    sustained: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in codes}
    with ExitStack() as stack:
        harness = start_host(args.index, work_dir / "hosts")
        stack.callback(harness.stop)
        progress(f"started {harness.hostname} on {harness.tcp_uri}")
        host = Host.objects.create(name=harness.hostname, transport="tcp", address=harness.address)
        domains = stack.enter_context(bench_guests(harness.tcp_uri, args.guests, harness.address))
        conn = libvirt.open(harness.tcp_uri)
        stack.callback(conn.close)
        clock = EventClock(conn)
        cookies = session_cookies(max(sizes))
        for round_number in range(args.rounds):
            for name, code in (codes if round_number % 2 == 0 else codes[::-1]):
                from django.utils import timezone

                stack_started = timezone.now()
                with live_stack(code, server_of(name), env, work_dir / "logs") as (port, redis_url):
                    rows = wait_for_listener(domains, stack_started)
                    guests = [Guest(domain=domain, pk=rows[domain.UUIDString()],
                                    paused=domain.state()[0] == libvirt.VIR_DOMAIN_PAUSED) for domain in domains]
                    tap = PublishedTap(redis_url, "vmsite.live.0") if (code / "events" / "hub.py").exists() else None
                    clients = Clients(args.processes)
                    clients.start(port)
                    try:
                        for size in sizes:
                            clients.open(cookies[:size])
                            progress(f"{name}: {size} sockets open")
                            measure(clients, guests, clock, 4, args.rate, size, tap)  # warm-up
                            measured = measure(clients, guests, clock, args.events, args.rate, size, tap)
                            results.setdefault((name, f"latency:{size}"), []).extend(measured.latency)
                            results.setdefault((name, f"published:{size}"), []).extend(measured.published)
                            results.setdefault((name, "call_to_event"), []).extend(measured.call_to_event)
                            missing[(name, f"latency:{size}")] = (missing.get((name, f"latency:{size}"), 0)
                                                                  + measured.missing)
                            line = figure("latency", measured.latency, code=name, clients=size,
                                          round=round_number + 1, missing=measured.missing)
                            progress(json.dumps(line))
                            clients.close()
                        if round_number == 0 and args.rates:
                            clients.open(cookies[:max(sizes)])
                            for rate in [float(r) for r in args.rates.split(",")]:
                                count = max(args.events, int(rate * args.rate_seconds))
                                measured = measure(clients, guests, clock, count, rate, max(sizes), tap)
                                line = figure("sustained", measured.latency, code=name, clients=max(sizes),
                                              rate_per_s=rate, missing=measured.missing)
                                progress(json.dumps(line))
                                sustained[name].append(line)
                                if not measured.latency or line["p95_ms"] > SUSTAINED_LIMIT_MS or measured.missing:
                                    break
                            clients.close()
                    finally:
                        clients.stop()
                        if tap is not None:
                            tap.stop()
        host.delete()
        for name, _ in codes:
            tag = {"code": name} if args.baseline_code else {}
            emit(figure("call_to_event", results.get((name, "call_to_event"), []), **tag))
            for size in sizes:
                emit(figure("latency", results.get((name, f"latency:{size}"), []), **tag, clients=size,
                            processes=min(args.processes, size), missing=missing.get((name, f"latency:{size}"), 0)))
                if results.get((name, f"published:{size}")):
                    emit(figure("published", results[(name, f"published:{size}")], **tag, clients=size))
            for line in sustained[name]:
                emit({**line, **tag})
            passing = [line["rate_per_s"] for line in sustained[name]
                       if line.get("p95_ms", float("inf")) <= SUSTAINED_LIMIT_MS and not line["missing"]]
            if args.rates:
                emit({"bench": BENCH, "operation": "max_sustained_rate", **tag, "clients": max(sizes),
                      "events_per_s": max(passing) if passing else 0, "p95_limit_ms": SUSTAINED_LIMIT_MS})
            largest = figure("latency", results.get((name, f"latency:{max(sizes)}"), []))
            if "p95_ms" in largest:
                emit({"bench": BENCH, "target": f"p95 at {max(sizes)} clients <= {TARGET_P95_MS:g} ms", **tag,
                      "value": largest["p95_ms"], "met": largest["p95_ms"] <= TARGET_P95_MS})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,50,200", help="socket counts, comma-separated")
    parser.add_argument("--processes", type=int, default=10, help="client processes")
    parser.add_argument("--events", type=int, default=40, help="events per measurement")
    parser.add_argument("--rate", type=float, default=4.0, help="events per second for the latency figures")
    parser.add_argument("--rates", default="2,5,10,20,40,80,160",
                        help="rising event rates for the sustained figure ('' to skip)")
    parser.add_argument("--rate-seconds", type=float, default=4.0, help="how long each sustained rate runs")
    parser.add_argument("--guests", type=int, default=8, help="running guests the events are spread over")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (each code's stack is started afresh)")
    parser.add_argument("--index", type=int, default=80, help="harness host index (127.0.0.N)")
    parser.add_argument("--baseline-code", help="a copy of other code to measure interleaved with this one")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    work_dir = Path(tempfile.mkdtemp(prefix="vmsite-bench-events-"))
    started = time.perf_counter()
    from bench.inventory import progress

    try:
        run(args, work_dir)
    finally:
        if os.environ.get("BENCH_KEEP_LOGS"):
            progress(f"logs kept in {work_dir / 'logs'}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
        progress(f"wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
