"""Messages to open pages, from any process (web, worker, listener), through Redis pub/sub.

Every message names the host it concerns (`host`, None for what concerns no single host). It is
serialised once, here, and published once on one Redis channel (settings.LIVE_CHANNEL); each web
process receives it once and hands it to those of its sockets whose user may see it
(events/hub.py). A message is small and typed; pages treat it as "this object changed, at this
sequence number" and fetch what they show from the server, so no message needs to carry a page.

Sending never blocks the caller: messages go to one thread per process, in order; a burst is
published in one round trip. The listener, whose worker threads may wait a moment for Redis, sends
on the calling thread instead (`publish_on_calling_thread`): one thread hop fewer between a libvirt
event and the pages.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import threading
from typing import Any

import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

logger = logging.getLogger(__name__)

BATCH = 500  # messages published in one round trip at most


class _Publisher:
    def __init__(self, *, on_calling_thread: bool = False) -> None:
        self.on_calling_thread = on_calling_thread
        self.queue: queue.Queue[str | None] = queue.Queue()  # None: stop
        self.client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=5)
        self.channel = settings.LIVE_CHANNEL
        self.thread = threading.Thread(target=self._run, name="live-publisher", daemon=True)
        self.thread.start()

    def send(self, text: str) -> None:
        if not self.on_calling_thread:
            self.queue.put(text)
            return
        try:
            self.client.publish(self.channel, text)
        except redis.RedisError as exc:
            logger.warning("live message not sent: %s", exc)

    def stop(self) -> None:
        """End the thread once it has sent what was queued before."""
        self.queue.put(None)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self.queue.get()]
            while len(batch) < BATCH and batch[-1] is not None:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stopping = batch[-1] is None
            try:
                self._publish([text for text in batch if text is not None])
            finally:
                for _ in batch:
                    self.queue.task_done()
        self.client.close()

    def _publish(self, texts: list[str]) -> None:
        if not texts:
            return
        try:
            pipeline = self.client.pipeline(transaction=False)
            for text in texts:
                pipeline.publish(self.channel, text)
            pipeline.execute()
        except redis.RedisError as exc:  # pages catch up on their next snapshot; never fail the caller
            logger.warning("%d live message(s) not sent: %s", len(texts), exc)
        except Exception:  # nor end the thread: every later message would wait in its queue for ever
            logger.exception("%d live message(s) not sent", len(texts))

    def flush(self, timeout: float = 5.0) -> None:
        with self.queue.all_tasks_done:
            self.queue.all_tasks_done.wait_for(lambda: not self.queue.unfinished_tasks, timeout=timeout)


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()
_publisher_pid: int | None = None
_on_calling_thread = False


def _get_publisher() -> _Publisher:
    global _publisher, _publisher_pid
    with _publisher_lock:
        if _publisher is None or _publisher_pid != os.getpid():  # a forked worker child needs its own
            _publisher = _Publisher(on_calling_thread=_on_calling_thread)
            _publisher_pid = os.getpid()
            atexit.register(_publisher.flush)
        return _publisher


@receiver(setting_changed)
def _redis_setting_changed(*, setting: str, **kwargs) -> None:
    """A test points REDIS_URL (or the channel) elsewhere for a while: the publisher made meanwhile
    must not outlive it, or every later message of the process goes to that test's Redis, long
    gone (a whole run lost the live messages of every later test on its worker so)."""
    global _publisher
    if setting not in ("REDIS_URL", "LIVE_CHANNEL"):
        return
    with _publisher_lock:
        if _publisher is not None and _publisher_pid == os.getpid():
            _publisher.stop()
        _publisher = None


def publish_on_calling_thread() -> None:
    """From now on, this process's messages are published by the thread that sends them (for the
    listener: a web request must never wait for Redis, a listener's worker thread may)."""
    global _on_calling_thread
    with _publisher_lock:
        _on_calling_thread = True
        if _publisher is not None:
            _publisher.flush()
            _publisher.on_calling_thread = True


def publish(host_id: int | None, message: dict[str, Any]) -> None:
    """Send `message` to the sockets that may see host `host_id` (None: every logged-in viewer)."""
    _get_publisher().send(json.dumps({**message, "host": host_id}, separators=(",", ":")))


def flush(timeout: float = 5.0) -> None:
    """Wait until every message sent so far is handed to Redis (tests, and before a process exits)."""
    if _publisher is not None and _publisher_pid == os.getpid():
        _publisher.flush(timeout)


def publish_domain(*, domain_id: int, host_id: int, seq: int, state: int | None, change: str) -> None:
    publish(host_id, {"type": "domain", "id": domain_id, "seq": seq, "state": state, "change": change})


def publish_inventory(*, host_id: int) -> None:
    """Many rows of one host may have changed at once (a reconcile): pages showing it refetch."""
    publish(host_id, {"type": "inventory", "id": host_id})


def publish_host(*, host_id: int) -> None:
    """A host, or what some users may see of it, changed: every socket re-reads its user's scope
    (events/hub.py) before it receives this or any later message."""
    publish(host_id, {"type": "host", "id": host_id})


def publish_operation(*, operation_id: int, host_id: int | None, seq: int, state: str, progress: int,
                      target: str) -> None:
    publish(host_id, {"type": "operation", "id": operation_id, "seq": seq, "state": state, "progress": progress,
                      "target": target})
