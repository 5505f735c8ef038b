"""One libvirt connection per host per process, opened lazily under a lock."""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import libvirt

from virt.errors import HostUnavailable, is_connection_lost, translate
from virt.eventloop import ensure_event_loop

logger = logging.getLogger(__name__)

KEEPALIVE_INTERVAL = 5  # seconds between keepalive probes
KEEPALIVE_COUNT = 3  # unanswered probes before the connection counts as dead


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

    def get(self, uri: str) -> libvirt.virConnect:
        with self._lock_for(uri):
            conn = self._connections.get(uri)
            if conn is not None and conn.isAlive():
                return conn
            conn = self._open(uri)
            self._connections[uri] = conn
            return conn

    def drop(self, uri: str) -> None:
        with self._lock:
            conn = self._connections.pop(uri, None)
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass

    def close_all(self) -> None:
        for uri in list(self._connections):
            self.drop(uri)

    @contextmanager
    def session(self, uri: str) -> Iterator[libvirt.virConnect]:
        """Use the host's connection; libvirt errors leave as typed VirtErrors."""
        conn = self.get(uri)
        try:
            yield conn
        except libvirt.libvirtError as exc:
            if is_connection_lost(exc):
                self.drop(uri)
            raise translate(exc) from exc

    def _lock_for(self, uri: str) -> threading.Lock:
        with self._lock:
            return self._host_locks.setdefault(uri, threading.Lock())

    def _open(self, uri: str) -> libvirt.virConnect:
        ensure_event_loop()
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise HostUnavailable(exc.get_error_message() or str(exc), code=exc.get_error_code()) from exc
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


_pool = ConnectionPool()


def pool() -> ConnectionPool:
    return _pool
