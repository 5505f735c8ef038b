"""The long-running process that keeps a live connection to every enabled host.

A lost connection marks the host offline at once (libvirt's close callback, or keepalive for a
host that hangs); the listener reconnects with backoff and, because events during an outage are
lost, runs a full reconcile on every (re)connect. libvirt callbacks only put a record on a queue;
this process's main loop does the database work.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from django.db import close_old_connections

from hosts.choices import HostStatus, Transport
from hosts.connection import connect_uri
from hosts.models import Host
from hosts.reconcile import host_reconcile
from hosts.services import host_mark_unreachable
from virt.connection import close_quietly, open_monitored
from virt.errors import VirtError
from virt.types import Connection

logger = logging.getLogger(__name__)

BACKOFF_START = 1.0
BACKOFF_MAX = 5.0  # a host that comes back is seen within seconds; a refused connect costs little
HOST_LIST_REFRESH = 5.0


@dataclass
class Watch:
    host_id: int
    uri: str
    conn: Connection | None = None
    connecting: Future | None = None
    next_attempt: float = 0.0
    backoff: float = BACKOFF_START
    generation: int = 0  # which connection a close record belongs to


@dataclass
class Listener:
    records: queue.Queue = field(default_factory=queue.Queue)
    watches: dict[int, Watch] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(16, thread_name_prefix="listener"))
    _hosts_loaded_at: float = 0.0

    def run(self) -> None:
        logger.info("listener started")
        while not self.stopping.is_set():
            self._refresh_hosts()
            self._start_due_connects()
            self._drain_records(timeout=0.5)
        for watch in self.watches.values():
            self._disconnect(watch)
        self.executor.shutdown(wait=False, cancel_futures=True)

    def stop(self) -> None:
        self.stopping.set()

    def _refresh_hosts(self) -> None:
        if time.monotonic() - self._hosts_loaded_at < HOST_LIST_REFRESH:
            return
        self._hosts_loaded_at = time.monotonic()
        close_old_connections()
        hosts = {host.pk: host for host in Host.objects.filter(enabled=True).exclude(transport=Transport.SSH,
                                                                                       ssh_host_keys="")}
        for host_id in set(self.watches) - set(hosts):
            self._disconnect(self.watches.pop(host_id))
        for host_id, host in hosts.items():
            uri = connect_uri(host)
            watch = self.watches.get(host_id)
            if watch is not None and watch.uri != uri:  # edited: reconnect with the new settings
                self._disconnect(self.watches.pop(host_id))
                watch = None
            if watch is None:
                self.watches[host_id] = Watch(host_id=host_id, uri=uri)

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
        logger.info("host %s connected; reconciling", watch.host_id)
        self.executor.submit(self._reconcile, watch.host_id)

    def _on_closed(self, watch: Watch, reason: str) -> None:
        logger.warning("host %s: connection lost: %s", watch.host_id, reason)
        if watch.conn is not None:
            close_quietly(watch.conn)
            watch.conn = None
        self._schedule_retry(watch, f"Connection lost: {reason}")

    def _schedule_retry(self, watch: Watch, reason: str) -> None:
        host = Host.objects.filter(pk=watch.host_id).first()
        if host is not None:
            status = HostStatus.ERROR if is_credential_failure(reason) else HostStatus.OFFLINE
            host_mark_unreachable(host=host, reason=reason, status=status)
        watch.next_attempt = time.monotonic() + watch.backoff
        watch.backoff = min(watch.backoff * 2, BACKOFF_MAX)

    def _reconcile(self, host_id: int) -> None:
        try:
            close_old_connections()
            host = Host.objects.filter(pk=host_id, enabled=True).first()
            if host is not None:
                host_reconcile(host=host, fresh=True)
        except VirtError as exc:
            logger.warning("reconcile of host %s after connect failed: %s", host_id, exc)
        except Exception:
            logger.exception("reconcile of host %s failed", host_id)
        finally:
            close_old_connections()

    def _disconnect(self, watch: Watch) -> None:
        watch.generation += 1
        if watch.conn is not None:
            close_quietly(watch.conn)
            watch.conn = None


def is_credential_failure(message: str) -> bool:
    """True when the failure is about credentials (an admin must act), not reachability."""
    return message.startswith(("host key changed", "auth failed", "permission denied by polkit"))
