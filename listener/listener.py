"""The long-running process that keeps a live connection to every host it owns, and turns libvirt's
events into fresh rows and live messages.

Hosts are shared among running listeners through leases in Redis (listener/lease.py). A lost
connection marks the host offline at once (libvirt's close callback, or keepalive for a host that
hangs); the listener reconnects with backoff, registers its event callbacks on the new connection
(once), and, because events during an outage are lost, runs a full reconcile.

libvirt callbacks only put a record on a queue. The main loop coalesces records per object: the
first record about a VM is read at once (a page sees a suspend within milliseconds), and the rest
of a burst of events on that VM becomes one more refetch. A refetch answers every event received
before it began to read (what caused one had happened by then): events that came while it waited
for a thread cost nothing more. After a pause or a resume only the run state is read (two round
trips instead of six, virt.domains.refetch_run_state); any other event reads the whole VM. Due
refreshes go to the host's threads, which refetch the object, store it and publish; work for one
host never waits for another host.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, close_old_connections

from domains.sync import domain_apply_run_state, domain_apply_state, domain_row, domain_store_new
from listener.lease import ROUND_SECONDS, HostLeases, new_listener_id
from events.publish import flush, publish_host
from hosts.choices import HostStatus, Transport
from hosts.connection import connect_uri, host_ssh_files_ensure
from hosts.models import Host
from hosts.sync import host_mark_unreachable, unreachable_status
from inventory.reconcile import host_reconcile, host_reconcile_pools_and_networks
from metrics.sampler import HostSampler, compact
from virt.connection import close_quietly, open_monitored
from virt.domains import refetch, refetch_run_state
from virt.errors import VirtError
from virt.events import SETTLING_LIFECYCLE, STATE_ONLY_LIFECYCLE, EventRecord, Registration, register_events
from virt.types import Connection

logger = logging.getLogger(__name__)
rounds_logger = logging.getLogger("listener.rounds")  # one line per graph round at DEBUG (bench/listener.py)

BACKOFF_START = 1.0
BACKOFF_MAX = 5.0  # a host that comes back is seen within seconds; a refused connect costs little
HOST_LIST_REFRESH = ROUND_SECONDS
REFRESH_DELAY = 0.01  # records arriving within this window become one refetch (and see _on_refreshed)
SETTLING_DELAY = 0.5  # after a stop: a fake reboot's passing "off" is over by then
RECONCILE_DELAY = 0.3  # a new VM, or a pool or network event: one reconcile for a burst of them
MAX_DEFER = 1.0  # an object with a steady stream of events is still refreshed this often
VM_THREADS = 4
COMPACT_SECONDS = 60.0
DATABASE_RETRY = 1.0
REFRESH_RETRIES = 3  # a VM refresh that failed (a busy host, the database away) is tried again this often
# How long stopping waits for the host threads to finish what they are doing (a refetch and its write):
# none may still write to the database once stop() has returned.
STOP_WAIT = 10.0


@dataclass
class Watch:
    host_id: int
    uri: str
    conn: Connection | None = None
    connecting: Future | None = None
    next_attempt: float = 0.0
    backoff: float = BACKOFF_START
    generation: int = 0  # which connection a close record belongs to
    registration: Registration | None = None
    # VM refreshes run a few at a time, never two for one VM (a VM busy with a job can hold its
    # calls for seconds: others must not wait behind it). Pools and networks, whose calls can wait
    # on a long storage job, have a thread of their own.
    worker: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(VM_THREADS, thread_name_prefix="vms"))
    slow_worker: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="inv"))
    in_flight: set[str] = field(default_factory=set)  # VMs being refreshed now
    dirty: dict[str, Unread] = field(default_factory=dict)  # ... that had other events meanwhile
    failures: dict[str, int] = field(default_factory=dict)  # VMs whose last refreshes failed: how many in a row
    reconciling: bool = False
    touched: set[str] = field(default_factory=set)  # VMs with events during the full reconcile
    sampler: HostSampler | None = None
    sampling: bool = False
    next_sample: float = 0.0
    next_compact: float = 0.0
    sample_worker: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="graphs"))
    conn_users: set[Future] = field(default_factory=set)  # work submitted with conn (see _close_after_use)


@dataclass
class Unread:
    """Events on a VM that no refresh has read yet."""

    full: bool = True  # False: only the run state changed (a pause, a resume), two round trips suffice
    received: float = 0.0  # when the latest of them came (time.monotonic())

    def add(self, other: Unread) -> None:
        self.full = self.full or other.full
        self.received = max(self.received, other.received)

    def read_by(self, read_from: float, full: bool) -> bool:
        """Whether a refresh that began to read at read_from (the whole VM, or its run state alone)
        saw what they changed."""
        return self.received <= read_from and (full or not self.full)


@dataclass
class Pending:
    """A refresh waiting for its burst of records to end."""

    due: float
    deadline: float
    unread: Unread


@dataclass
class Listener:
    records: queue.Queue = field(default_factory=queue.Queue)
    watches: dict[int, Watch] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(16, thread_name_prefix="listener"))
    listener_id: str = field(default_factory=new_listener_id)
    pending: dict[tuple[int, str, str], Pending] = field(default_factory=dict)
    registrations_made: int = 0  # event callback sets registered since start (one per connection)
    events_received: int = 0
    started: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)  # run() is over, its threads done
    _hosts_loaded_at: float = 0.0
    _run_thread: threading.Thread | None = None
    _retiring: list[threading.Thread] = field(default_factory=list)  # each waits for shut-down thread pools

    def __post_init__(self) -> None:
        self.leases = HostLeases(redis.Redis.from_url(settings.REDIS_URL), self.listener_id)

    def run(self) -> None:
        self._run_thread = threading.current_thread()
        self.started.set()
        logger.info("listener %s started", self.listener_id)
        try:
            while not self.stopping.is_set():
                try:
                    self._round()
                except DatabaseError as exc:  # PostgreSQL restarting: keep the connections to hosts, try again
                    logger.warning("database unreachable (%s); retrying in %.0f s", exc, DATABASE_RETRY)
                    close_old_connections()
                    self.stopping.wait(DATABASE_RETRY)
        finally:
            for watch in self.watches.values():
                self._drop(watch)
            self._retire([self.executor])
            self._wait_for_retired(STOP_WAIT)
            self.leases.release_all()
            for host_id in self.watches:
                publish_host(host_id=host_id)
            flush()
            logger.info("listener %s stopped", self.listener_id)
            self.finished.set()

    def stop(self) -> None:
        """End the main loop. From another thread, return once it has ended and its threads have
        finished their work (STOP_WAIT at the most); from a signal handler on the loop's own thread,
        at once: the loop waits for them before run() returns."""
        self.stopping.set()
        if self.started.is_set() and threading.current_thread() is not self._run_thread:
            self.finished.wait(STOP_WAIT + 5)

    def _round(self) -> None:
        self._refresh_hosts()
        self._start_due_connects()
        self._drain_records(timeout=self._next_wait())
        self._start_due_refreshes()
        self._start_due_samples()

    def _refresh_hosts(self) -> None:
        if time.monotonic() - self._hosts_loaded_at < HOST_LIST_REFRESH:
            return
        self._hosts_loaded_at = time.monotonic()
        close_old_connections()
        enabled = {host.pk: host for host in Host.objects.filter(enabled=True).exclude(transport=Transport.SSH,
                                                                                         ssh_host_keys="")}
        try:
            owned = self.leases.rebalance(set(enabled))
        except redis.RedisError as exc:  # without Redis no one can tell who owns what: keep what we have
            logger.warning("host leases not renewed (%s); keeping the current hosts", exc)
            owned = set(self.watches) & set(enabled)
        hosts = {host_id: host for host_id, host in enabled.items() if host_id in owned}
        for host_id in set(self.watches) - set(hosts):
            self._drop(self.watches.pop(host_id))
            publish_host(host_id=host_id)  # open pages re-read whether anyone watches it now
        for host_id, host in hosts.items():
            try:
                uri = connect_uri(host)
            except ValidationError as exc:  # a row edited outside the forms: say so, watch the others
                host_mark_unreachable(host=host, reason=f"Invalid connection settings: {' '.join(exc.messages)}",
                                      status=HostStatus.ERROR)
                continue
            watch = self.watches.get(host_id)
            if watch is not None and watch.uri != uri:  # edited: reconnect with the new settings
                self._drop(self.watches.pop(host_id))
                watch = None
            if watch is None:
                host_ssh_files_ensure(host)  # before its first connect here; writes only what changed
                self.watches[host_id] = Watch(host_id=host_id, uri=uri)
                publish_host(host_id=host_id)  # its lease is ours: "not watched" badges on open pages go

    def _start_due_connects(self) -> None:
        now = time.monotonic()
        for watch in self.watches.values():
            if watch.conn is None and watch.connecting is None and now >= watch.next_attempt:
                watch.generation += 1
                generation = watch.generation
                watch.connecting = self.executor.submit(open_monitored, watch.uri,
                                                        self._close_callback(watch.host_id, generation))
                watch.connecting.add_done_callback(
                    lambda future, host_id=watch.host_id, g=generation: self.records.put(("connected", host_id, g, future))
                )

    def _close_callback(self, host_id: int, generation: int):
        def on_close(reason: str) -> None:
            self.records.put(("closed", host_id, generation, reason))

        return on_close

    def _drain_records(self, timeout: float) -> None:
        try:
            record = self.records.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._handle(record)
            try:
                record = self.records.get_nowait()
            except queue.Empty:
                return

    def _handle(self, record: tuple) -> None:
        kind, host_id, generation, payload = record
        watch = self.watches.get(host_id)
        if watch is None or generation != watch.generation:
            if kind == "connected" and payload.exception() is None:
                close_quietly(payload.result())  # a host disabled or edited while we connected
            return
        if kind == "event":
            self._on_event(watch, payload)
            return
        if kind == "refreshed":
            self._on_refreshed(watch, *payload)
            return
        if kind == "reconciled":
            self._on_reconciled(watch)
            return
        if kind == "sampled":
            watch.sampling = False
            return
        close_old_connections()
        if kind == "connected":
            self._on_connected(watch, payload)
        elif kind == "closed":
            self._on_closed(watch, payload)

    def _on_connected(self, watch: Watch, future: Future) -> None:
        watch.connecting = None
        error = future.exception()
        if error is not None:
            self._schedule_retry(watch, f"{error}")
            return
        watch.conn = future.result()
        watch.backoff = BACKOFF_START
        try:
            watch.registration = register_events(watch.conn, self._event_sink(watch.host_id, watch.generation))
        except VirtError as exc:
            logger.warning("host %s: events not registered (%s); reconnecting", watch.host_id, exc)
            self._disconnect(watch)
            self._schedule_retry(watch, f"Events could not be registered: {exc}")
            return
        self.registrations_made += 1
        logger.info("host %s connected, %d event callbacks registered; reconciling", watch.host_id,
                    watch.registration.count)
        watch.in_flight.clear()
        watch.dirty.clear()
        watch.failures.clear()
        watch.sampler = HostSampler(watch.host_id)  # counters may have restarted with the daemon
        watch.sampling = False
        watch.reconciling = True
        # "reconciled" comes as soon as the rows hold the reconcile's read (see _reconcile); again when it
        # is over, which is how a reconcile that failed before that ends too.
        self._after(watch.worker.submit(self._reconcile, watch.host_id, watch.generation),
                    ("reconciled", watch.host_id, watch.generation, None))

    def _event_sink(self, host_id: int, generation: int):
        def sink(record: EventRecord) -> None:  # libvirt's event loop thread: hand on, return
            self.records.put(("event", host_id, generation, record))

        return sink

    def _after(self, future: Future, record: tuple | Callable[[Future], tuple]) -> None:
        """When future is done, put record in the queue (or what record makes of the future)."""
        future.add_done_callback(lambda done: self.records.put(record(done) if callable(record) else record))

    def _on_event(self, watch: Watch, record: EventRecord) -> None:
        self.events_received += 1
        host_id = watch.host_id
        logger.debug("host %s: %s %s %s (%s)", host_id, record.kind, record.uuid, record.event, record.detail)
        if record.kind == "domain":
            if watch.reconciling:
                watch.touched.add(record.uuid)
            settling = record.event == "lifecycle" and record.detail in SETTLING_LIFECYCLE
            key = (host_id, "domain", record.uuid)
            full = not (record.event == "lifecycle" and record.detail in STATE_ONLY_LIFECYCLE)
            if settling:
                delay = SETTLING_DELAY
            elif key not in self.pending and record.uuid not in watch.in_flight:
                delay = 0.0  # the first record of a burst is read at once; the rest of it, once more after
            else:
                delay = REFRESH_DELAY
            self._defer(key, delay, Unread(full, record.received))
        else:  # pools and networks: few per host, read by their cheap list calls
            self._defer((host_id, "pools-networks", ""), RECONCILE_DELAY)

    def _on_refreshed(self, watch: Watch, uuid: str, read_from: float | None, full: bool = True) -> None:
        """A refresh of the VM ended: read_from is when it began to read (None: it failed), full
        whether it read the whole VM. What it read answers the events received before it began."""
        key = (watch.host_id, "domain", uuid)
        watch.in_flight.discard(uuid)
        unread = watch.dirty.pop(uuid, None)
        if read_from is not None:
            watch.failures.pop(uuid, None)
            if unread is not None and unread.read_by(read_from, full):
                unread = None
            pending = self.pending.get(key)
            if pending is not None and pending.unread.read_by(read_from, full):
                del self.pending[key]
        if unread is not None:
            self._defer(key, 0.0, unread)
        elif read_from is None and watch.failures.get(uuid, 0) < REFRESH_RETRIES:  # else the reconcile catches up
            watch.failures[uuid] = watch.failures.get(uuid, 0) + 1
            self._defer(key, DATABASE_RETRY)

    def _on_reconciled(self, watch: Watch) -> None:
        """The reconcile read every VM at one moment: refresh those that changed while it wrote."""
        if watch.reconciling:
            logger.info("host %s reconciled; %d VM(s) with events meanwhile read again", watch.host_id,
                        len(watch.touched))
        watch.reconciling = False
        for uuid in watch.touched:
            self._defer((watch.host_id, "domain", uuid), 0.0)
        watch.touched.clear()

    def _defer(self, key: tuple[int, str, str], delay: float, unread: Unread | None = None) -> None:
        """Refresh the object after delay (later if more records come, MAX_DEFER at the latest); by
        default it reads the whole object, for a reason of this moment."""
        now = time.monotonic()
        unread = unread or Unread(full=True, received=now)
        pending = self.pending.get(key)
        if pending is None:
            self.pending[key] = Pending(due=now + delay, deadline=now + MAX_DEFER, unread=unread)
        else:
            pending.due = min(max(pending.due, now + delay), pending.deadline)
            pending.unread.add(unread)

    def _next_wait(self) -> float:
        if not self.pending:
            return 0.5
        return max(0.0, min(0.5, min(p.due for p in self.pending.values()) - time.monotonic()))

    def _start_due_refreshes(self) -> None:
        now = time.monotonic()
        for key in [key for key, pending in self.pending.items() if pending.due <= now]:
            unread = self.pending.pop(key).unread
            host_id, kind, uuid = key
            watch = self.watches.get(host_id)
            if watch is None or watch.conn is None:
                continue  # the reconcile after the reconnect covers it
            if kind == "domain":
                if uuid in watch.in_flight:
                    watch.dirty.setdefault(uuid, Unread(full=False)).add(unread)
                    continue
                watch.in_flight.add(uuid)
                generation, full = watch.generation, unread.full
                self._after(self._using_conn(watch, watch.worker.submit(self._refresh_domain, watch.conn, host_id, uuid, full)),
                            lambda done, uuid=uuid, full=full: ("refreshed", host_id, generation,
                                                                 (uuid, _read_from(done), full)))
            else:
                self._using_conn(watch, watch.slow_worker.submit(self._reconcile_pools_and_networks, watch.conn, host_id))

    def _start_due_samples(self) -> None:
        now = time.monotonic()
        for watch in self.watches.values():
            if watch.conn is None or watch.sampler is None or watch.sampling or now < watch.next_sample:
                continue
            watch.sampling = True
            watch.next_sample = now + settings.GRAPH_SAMPLE_SECONDS
            compact_too = now >= watch.next_compact
            if compact_too:
                watch.next_compact = now + COMPACT_SECONDS
            self._after(self._using_conn(watch, watch.sample_worker.submit(self._sample, watch.sampler, watch.conn, compact_too)),
                        ("sampled", watch.host_id, watch.generation, None))

    def _sample(self, sampler: HostSampler, conn: Connection, compact_too: bool) -> None:
        started = time.monotonic()
        try:
            close_old_connections()
            rows = sampler.sample(conn)
            if compact_too:
                compact(host_id=sampler.host_id)
            self._log_round(sampler.host_id, rows, time.monotonic() - started)
        except VirtError as exc:
            logger.debug("host %s: no graph sample (%s)", sampler.host_id, exc)
        except Exception:
            logger.exception("host %s: graph sample failed", sampler.host_id)

    @staticmethod
    def _log_round(host_id: int, rows: int, seconds: float) -> None:
        if seconds > settings.GRAPH_SAMPLE_SECONDS:  # the next round is late: graphs get gaps
            logger.warning("host %s: a graph round took %.1f s, longer than GRAPH_SAMPLE_SECONDS (%s s)",
                           host_id, seconds, settings.GRAPH_SAMPLE_SECONDS)
        rounds_logger.debug("host %s: graph round of %d rows in %.1f ms", host_id, rows, seconds * 1000)

    def _refresh_domain(self, conn: Connection, host_id: int, uuid: str, full: bool = True) -> float | None:
        """When it began to read libvirt, once the VM's row says what it read; None when it failed
        (tried again, see _on_refreshed)."""
        read_from = time.monotonic()
        try:
            close_old_connections()
            row = domain_row(host_id=host_id, uuid=uuid)
            if not full and row is not None:
                run_state = refetch_run_state(conn, uuid)
                if run_state is not None:
                    domain_apply_run_state(row=row, state=run_state[0], reason=run_state[1])
                    return read_from
            live = refetch(conn, uuid)
            if row is not None:
                domain_apply_state(row=row, live=live)
                logger.debug("host %s: VM %s refreshed: state %s", host_id, uuid, live.state if live else "gone")
            elif live is not None:
                host = Host.objects.filter(pk=host_id).first()
                if host is not None and domain_store_new(host=host, conn=conn, uuid=uuid):
                    logger.debug("host %s: new VM %s stored", host_id, uuid)
            return read_from
        except VirtError as exc:
            logger.info("host %s: refresh of VM %s failed (%s); trying again", host_id, uuid, exc)
        except Exception:
            logger.exception("host %s: refresh of VM %s failed; trying again", host_id, uuid)
        return None

    def _on_closed(self, watch: Watch, reason: str) -> None:
        logger.warning("host %s: connection lost: %s", watch.host_id, reason)
        watch.registration = None  # the callbacks went with the connection
        self._close_after_use(watch)
        self._schedule_retry(watch, f"Connection lost: {reason}")

    def _schedule_retry(self, watch: Watch, reason: str) -> None:
        host = Host.objects.filter(pk=watch.host_id).first()
        if host is not None:
            host_mark_unreachable(host=host, reason=reason, status=unreachable_status(reason))
        watch.next_attempt = time.monotonic() + watch.backoff
        watch.backoff = min(watch.backoff * 2, BACKOFF_MAX)

    def _reconcile(self, host_id: int, generation: int) -> None:
        """The full reconcile after a connect. Its rows are written before the VMs it finds new are
        described, one call each, which on a host with many takes seconds: the VMs that had events
        meanwhile are read again from the moment the rows are written, not after the describing."""
        def applied() -> None:
            self.records.put(("reconciled", host_id, generation, None))

        self._on_enabled_host(host_id, "full reconcile after connect",
                              lambda host: host_reconcile(host=host, fresh=True, applied=applied))

    def _reconcile_pools_and_networks(self, conn: Connection, host_id: int) -> None:
        self._on_enabled_host(host_id, "pools and networks read",
                              lambda host: host_reconcile_pools_and_networks(host=host, conn=conn))

    @staticmethod
    def _on_enabled_host(host_id: int, what: str, work) -> None:
        """Run work(host) on a worker thread; a failure is logged (the next reconcile catches up)."""
        try:
            close_old_connections()
            host = Host.objects.filter(pk=host_id, enabled=True).first()
            if host is not None:
                work(host)
        except VirtError as exc:
            logger.warning("host %s: %s failed: %s", host_id, what, exc)
        except Exception:
            logger.exception("host %s: %s failed", host_id, what)
        finally:
            close_old_connections()

    def _drop(self, watch: Watch) -> None:
        """Stop watching a host (disabled, removed, edited, or now another listener's)."""
        self._disconnect(watch)
        self._retire([watch.worker, watch.slow_worker, watch.sample_worker])

    def _retire(self, executors: list[ThreadPoolExecutor]) -> None:
        """Shut thread pools down without blocking the loop: queued work is dropped, and a thread of
        its own waits for the running work, so that stopping can wait for it (_wait_for_retired)."""
        for executor in executors:
            executor.shutdown(wait=False, cancel_futures=True)
        waiter = threading.Thread(target=lambda: [executor.shutdown(wait=True) for executor in executors],
                                  name="listener-retire", daemon=True)
        waiter.start()
        self._track_retiring(waiter)

    def _track_retiring(self, thread: threading.Thread) -> None:
        """stop() waits for this thread (_wait_for_retired); finished ones are forgotten."""
        self._retiring = [other for other in self._retiring if other.is_alive()] + [thread]

    def _wait_for_retired(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for waiter in self._retiring:
            waiter.join(max(0.0, deadline - time.monotonic()))
        busy = sum(waiter.is_alive() for waiter in self._retiring)
        if busy:
            logger.warning("listener %s: %d thread pools still busy after %.0f s; stopping without them",
                           self.listener_id, busy, timeout)

    def _disconnect(self, watch: Watch) -> None:
        watch.generation += 1
        if watch.registration is not None:
            watch.registration.deregister()
            watch.registration = None
        self._close_after_use(watch)

    @staticmethod
    def _using_conn(watch: Watch, future: Future) -> Future:
        """Note work that was handed the watch's connection, so that it is not closed under it."""
        watch.conn_users.add(future)
        future.add_done_callback(watch.conn_users.discard)
        return future

    def _close_after_use(self, watch: Watch) -> None:
        """Close the watch's connection once no work handed it is running: libvirt frees a closed
        connection under a thread still calling it (a worker's heap was corrupted once, a graph
        round in getAllDomainStats as the connection it read was closed after libvirtd died)."""
        conn, users = watch.conn, [future for future in list(watch.conn_users) if not future.done()]
        watch.conn, watch.conn_users = None, set()
        if conn is None:
            return
        if not users:
            close_quietly(conn)
            return
        closer = threading.Thread(target=_close_when_done, args=(conn, users), name="listener-close", daemon=True)
        closer.start()
        self._track_retiring(closer)


def _close_when_done(conn: Connection, users: list[Future]) -> None:
    _wait_until_done(users)
    close_quietly(conn)


def _wait_until_done(futures: list[Future]) -> None:
    """Wait until every future is done, cancelled ones included. concurrent.futures.wait() is no use
    here: a future that shutdown(cancel_futures=True) took off the queue never counts as done for it,
    so a dropped host's connection was never closed and stopping waited its whole STOP_WAIT."""
    finished = threading.Semaphore(0)
    for future in futures:
        future.add_done_callback(lambda _future: finished.release())
    for _future in futures:
        finished.acquire()


def _read_from(future: Future) -> float | None:
    """A refresh's outcome (see _refresh_domain), read in its done callback without raising there: a
    refresh cancelled with its pool or one that raised counts as failed, and its "refreshed" record is
    still put (else the VM stayed in flight, never refreshed again)."""
    return None if future.cancelled() or future.exception() is not None else future.result()
