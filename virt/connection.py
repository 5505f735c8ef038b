"""One libvirt connection per host per process, opened lazily under a lock.

What an open needs besides its URI (a SASL login, key and certificate files) is a Login, set for
the URI by whoever built it (`login_set`) and used by every open of that URI in this process: the
pool's, the listener's, a stream's. Its parts are callables, run only while the open runs, so a
password is read and a key file exists only for that long."""
from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from urllib.parse import urlsplit

import libvirt

from virt.errors import VirtError, connect_failure, is_connection_lost, sasl_failure, translate
from virt.eventloop import ensure_event_loop

logger = logging.getLogger(__name__)

# A host that answers nothing for 15-20 s (three probes 5 s apart, then the next look) counts as
# dead. 3 s x 2 (9-12 s) failed a VM creation on this machine's own libvirtd once, in a test run's
# busiest minute; libvirt's own clients wait longer still (virsh 5 s x 6, libvirtd 5 s x 5).
KEEPALIVE_INTERVAL = 5  # seconds between keepalive probes
KEEPALIVE_COUNT = 3  # unanswered probes before the connection counts as dead
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


@dataclass(frozen=True)
class Login:
    """How to open a URI: `files()` makes the key and certificate files the URI names exist for
    the length of a `with` block; `sasl()` gives (user name, password) when the host asks."""

    files: Callable[[], AbstractContextManager] | None = None
    sasl: Callable[[], tuple[str, str]] | None = None


NO_LOGIN = Login()
_logins: dict[str, Login] = {}


def login_set(uri: str, login: Login) -> None:
    """Every later open of `uri` in this process uses `login` (the last one set wins)."""
    _logins[uri] = login


def login_for(uri: str) -> Login:
    return _logins.get(uri, NO_LOGIN)


# Abandoned connects (past their time limit) keep a thread until the OS gives up on them; the pool
# is large enough that a few dead hosts never hold up a live one.
_connector = ThreadPoolExecutor(max_workers=32, thread_name_prefix="libvirt-connect")


def open_with_timeout(uri: str, timeout: float) -> libvirt.virConnect:
    login = login_for(uri)
    future = _connector.submit(_open_with_login, uri, login)
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        future.add_done_callback(_close_late_connection)
        raise connect_failure(f"Connection timed out after {timeout:.0f} s") from None
    except libvirt.libvirtError as exc:
        message, code = exc.get_error_message() or str(exc), exc.get_error_code()
        if code == libvirt.VIR_ERR_AUTH_FAILED and _transport(uri) in DEFAULT_PORTS:
            raise sasl_failure(message, login_given=login.sasl is not None, code=code) from exc
        raise connect_failure(message, code=code) from exc


def _open_with_login(uri: str, login: Login) -> libvirt.virConnect:
    # Read here, not inside libvirt's callback: an error raised there would be lost in C.
    sasl = login.sasl() if login.sasl is not None else None
    with login.files() if login.files is not None else nullcontext():
        return libvirt.openAuth(uri, [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE],
                                      _answer_credentials, sasl], 0)


def _answer_credentials(credentials: list, sasl: tuple[str, str] | None) -> int:
    """libvirt's auth callback: the SASL user name and password, or -1 (no login to give)."""
    if sasl is None:
        return -1
    user, password = sasl
    for credential in credentials:
        if credential[0] == libvirt.VIR_CRED_AUTHNAME:
            credential[4] = user
        elif credential[0] == libvirt.VIR_CRED_PASSPHRASE:
            credential[4] = password
        else:
            return -1
    return 0


def _transport(uri: str) -> str:
    return urlsplit(uri).scheme.partition("+")[2]


def _close_late_connection(future) -> None:
    if future.exception() is None:
        future.result().close()


def probe_tcp(uri: str) -> None:
    """For TCP and TLS, a quick socket connect first: refusal, timeout and bad names fail fast and
    precisely instead of inside libvirt's RPC layer."""
    parts = urlsplit(uri)
    transport = _transport(uri)
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
