"""One libvirt connection per host per process, opened lazily under a lock."""
from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from urllib.parse import urlsplit

import libvirt

from virt.errors import VirtError, connect_failure, is_connection_lost, translate
from virt.eventloop import ensure_event_loop

logger = logging.getLogger(__name__)

KEEPALIVE_INTERVAL = 3  # seconds between keepalive probes
KEEPALIVE_COUNT = 2  # unanswered probes before the connection counts as dead: a hung host fails in ~9 s
CONNECT_TIMEOUT = 20  # seconds; a connect that takes longer fails, and other hosts never wait for it
PROBE_TIMEOUT = 5
DEFAULT_PORTS = {"tcp": 16509, "tls": 16514}


def _silence_default_error_handler(_ctx, _err) -> None:
    # libvirt prints every error to stderr by default; we turn them into exceptions instead.
    return None


libvirt.registerErrorHandler(_silence_default_error_handler, None)


class ConnectionPool:
    """Connections by URI. A lost connection is dropped and reopened on next use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._connections: dict[str, libvirt.virConnect] = {}
        self._users: dict[int, int] = {}  # sessions using each connection now, by id()
        self._retired: dict[int, libvirt.virConnect] = {}  # dropped while in use: closed by the last user

    def get(self, uri: str) -> libvirt.virConnect:
        with self._lock_for(uri):
            return self._current(uri)

    def _current(self, uri: str) -> libvirt.virConnect:
        """The host's live connection, opened if need be; the caller holds the host's lock."""
        conn = self._connections.get(uri)
        if conn is not None and conn.isAlive():
            return conn
        conn = self._open(uri)
        self._connections[uri] = conn
        return conn

    def _acquire(self, uri: str) -> libvirt.virConnect:
        """The connection, counted as in use (under the host's lock, so no drop can slip between)."""
        with self._lock_for(uri):
            conn = self._current(uri)
            with self._lock:
                self._users[id(conn)] = self._users.get(id(conn), 0) + 1
            return conn

    def drop(self, uri: str) -> None:
        """Forget the host's connection; the next use opens a new one. It is closed at once if no
        session is using it, else when the last one ends: another thread may be inside a call on
        it (two host rows with one URI, a fresh reconcile beside an action)."""
        with self._lock_for(uri), self._lock:
            conn = self._connections.pop(uri, None)
            if conn is None:
                return
            if self._users.get(id(conn), 0):
                self._retired[id(conn)] = conn
                return
        close_quietly(conn)

    def close_all(self) -> None:
        with self._lock:
            connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            close_quietly(conn)

    @contextmanager
    def session(self, uri: str) -> Iterator[libvirt.virConnect]:
        """Use the host's connection; libvirt errors leave as typed VirtErrors."""
        conn = self._acquire(uri)
        try:
            yield conn
        except libvirt.libvirtError as exc:
            if is_connection_lost(exc):
                self.drop(uri)
            raise translate(exc) from exc
        except VirtError as exc:  # translated inside virt/: the libvirt error it came from decides
            if isinstance(exc.__cause__, libvirt.libvirtError) and is_connection_lost(exc.__cause__):
                self.drop(uri)
            raise
        finally:
            self._release(conn)

    def _release(self, conn: libvirt.virConnect) -> None:
        with self._lock:
            users = self._users.get(id(conn), 1) - 1
            if users:
                self._users[id(conn)] = users
                return
            self._users.pop(id(conn), None)
            retired = self._retired.pop(id(conn), None)
        if retired is not None:
            close_quietly(retired)

    def _lock_for(self, uri: str) -> threading.Lock:
        with self._lock:
            return self._host_locks.setdefault(uri, threading.Lock())

    def _open(self, uri: str) -> libvirt.virConnect:
        ensure_event_loop()
        probe_tcp(uri)
        conn = open_with_timeout(uri, CONNECT_TIMEOUT)
        if not uri.startswith("test:"):
            conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
        conn.registerCloseCallback(self._on_close, uri)
        logger.info("connected to %s", uri)
        return conn

    def _on_close(self, conn: libvirt.virConnect, reason: int, uri: str) -> None:
        # Runs on the event loop thread: only forget the connection, never block.
        logger.warning("connection to %s closed (reason %s)", uri, reason)
        with self._lock:
            if self._connections.get(uri) is conn:
                del self._connections[uri]


# Abandoned connects (past their time limit) keep a thread until the OS gives up on them; the pool
# is large enough that a few dead hosts never hold up a live one.
_connector = ThreadPoolExecutor(max_workers=32, thread_name_prefix="libvirt-connect")


def open_with_timeout(uri: str, timeout: float) -> libvirt.virConnect:
    future = _connector.submit(libvirt.open, uri)
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        future.add_done_callback(_close_late_connection)
        raise connect_failure(f"Connection timed out after {timeout:.0f} s") from None
    except libvirt.libvirtError as exc:
        raise connect_failure(exc.get_error_message() or str(exc), code=exc.get_error_code()) from exc


def _close_late_connection(future) -> None:
    if future.exception() is None:
        future.result().close()


def probe_tcp(uri: str) -> None:
    """For TCP and TLS, a quick socket connect first: refusal, timeout and bad names fail fast and
    precisely instead of inside libvirt's RPC layer."""
    parts = urlsplit(uri)
    transport = parts.scheme.partition("+")[2]
    if transport not in DEFAULT_PORTS or not parts.hostname:
        return
    try:
        with socket.create_connection((parts.hostname, parts.port or DEFAULT_PORTS[transport]), timeout=PROBE_TIMEOUT):
            pass
    except socket.gaierror as exc:
        raise connect_failure(f"{parts.hostname}: Name or service not known ({exc.strerror})") from None
    except TimeoutError:
        raise connect_failure(f"Connection to {parts.hostname} timed out after {PROBE_TIMEOUT} s") from None
    except OSError as exc:
        raise connect_failure(f"{parts.hostname}: {exc.strerror or exc}") from None


_pool = ConnectionPool()


def pool() -> ConnectionPool:
    return _pool


CLOSE_REASONS = {
    libvirt.VIR_CONNECT_CLOSE_REASON_ERROR: "connection error",
    libvirt.VIR_CONNECT_CLOSE_REASON_EOF: "the host closed the connection (libvirtd stopped?)",
    libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: "the host stopped answering keepalives",
    libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT: "closed by vmsite",
}


def open_monitored(uri: str, on_close) -> libvirt.virConnect:
    """A connection of its own (not pooled) with keepalive, whose loss calls on_close(reason_text).

    on_close runs on the event loop thread: it must only hand the news on, never block.
    """
    ensure_event_loop()
    probe_tcp(uri)
    conn = open_with_timeout(uri, CONNECT_TIMEOUT)
    if not uri.startswith("test:"):
        conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
    conn.registerCloseCallback(lambda _conn, reason, _opaque: on_close(CLOSE_REASONS.get(reason, str(reason))), None)
    return conn


def close_quietly(conn: libvirt.virConnect) -> None:
    try:
        conn.unregisterCloseCallback()
    except libvirt.libvirtError:
        pass
    try:
        conn.close()
    except libvirt.libvirtError:
        pass
