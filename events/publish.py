"""Messages to open pages, through the Channels layer, from any process (web, worker, listener).

Every message goes to the group of the host it concerns (`host.<id>`), or to `hosts` for what
concerns no single host; sockets join only the groups of hosts their user may see (see
events/access.py). A message is small and typed; pages treat it as "this object changed, at this
sequence number" and fetch what they show from the server, so no message needs to carry a page.

Sending never blocks the caller: messages go to one event loop thread per process, in order.
"""
from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from concurrent.futures import Future
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

ALL_HOSTS_GROUP = "hosts"


def host_group(host_id: int) -> str:
    return f"host.{host_id}"


class _Publisher:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-publisher", daemon=True)
        self.thread.start()
        self.layer = get_channel_layer()
        self.pending: set[Future] = set()
        self.lock = threading.Lock()

    def send(self, group: str, message: dict[str, Any]) -> Future:
        future = asyncio.run_coroutine_threadsafe(
            self.layer.group_send(group, {"type": "live.message", "message": message}), self.loop)
        with self.lock:
            self.pending.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future) -> None:
        with self.lock:
            self.pending.discard(future)
        if future.exception() is not None:  # pages catch up on their next snapshot; never fail the caller
            logger.warning("live message not sent: %s", future.exception())

    def flush(self, timeout: float = 5.0) -> None:
        with self.lock:
            pending = list(self.pending)
        for future in pending:
            try:
                future.result(timeout=timeout)
            except Exception:  # logged in _done
                pass


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()
_publisher_pid: int | None = None


def _get_publisher() -> _Publisher:
    import os

    global _publisher, _publisher_pid
    with _publisher_lock:
        if _publisher is None or _publisher_pid != os.getpid():  # a forked worker child needs its own
            _publisher = _Publisher()
            _publisher_pid = os.getpid()
            atexit.register(_publisher.flush)
        return _publisher


def publish(host_id: int | None, message: dict[str, Any]) -> None:
    """Send `message` to the sockets that may see host `host_id` (None: every logged-in viewer)."""
    group = ALL_HOSTS_GROUP if host_id is None else host_group(host_id)
    _get_publisher().send(group, {**message, "host": host_id})


def flush(timeout: float = 5.0) -> None:
    """Wait until every message sent so far is handed to Redis (tests, and before a process exits)."""
    if _publisher is not None:
        _publisher.flush(timeout)


def publish_domain(*, domain_id: int, host_id: int, seq: int, state: int | None, change: str) -> None:
    publish(host_id, {"type": "domain", "id": domain_id, "seq": seq, "state": state, "change": change})


def publish_inventory(*, host_id: int) -> None:
    """Many rows of one host may have changed at once (a reconcile): pages showing it refetch."""
    publish(host_id, {"type": "inventory", "id": host_id})


def publish_host(*, host_id: int) -> None:
    publish(host_id, {"type": "host", "id": host_id})
    publish(None, {"type": "host", "id": host_id})


def publish_operation(*, operation_id: int, host_id: int | None, seq: int, state: str, progress: int,
                      target: str) -> None:
    publish(host_id, {"type": "operation", "id": operation_id, "seq": seq, "state": state, "progress": progress,
                      "target": target})
