"""A lock held across processes and machines: a Redis key (redis-py's Lock, in the Redis every
vmsite process shares), renewed from a side thread while its holder works, so a long holder keeps
it, and left to expire when the holder dies (a killed worker renews nothing), so nobody waits
for a dead one longer than LOCK_TTL seconds."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import redis
from django.conf import settings
from redis.exceptions import LockError

from vmsite.redis_clients import redis_client

LOCK_TTL = 30.0  # seconds a lock outlives its holder's last renewal
_KEY = "vmsite:lock:{}"


class LockTimeout(Exception):
    """The lock stayed held by another holder for longer than the caller would wait."""


@contextmanager
def lock_held(name: str, *, wait: float, on_wait: Callable[[], None] = lambda: None,
              ttl: float = LOCK_TTL) -> Iterator[None]:
    """Hold the lock `name` for the block, waiting up to `wait` seconds for it (on_wait is called
    once when it must wait); LockTimeout when it is not had by then."""
    client = redis_client(socket_timeout=10, socket_connect_timeout=5)
    lock = client.lock(_KEY.format(name), timeout=ttl, thread_local=False)
    if not lock.acquire(blocking=False):
        on_wait()
        if not lock.acquire(blocking=True, blocking_timeout=wait):
            raise LockTimeout(f"{name} stayed locked for {wait:.0f} s")
    done = threading.Event()
    keeper = threading.Thread(target=_renew, args=(lock, ttl, done), name=f"lock-{name}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        done.set()
        keeper.join()
        with suppress(LockError):  # it expired meanwhile (Redis unreachable for longer than ttl)
            lock.release()
        client.close()


def _renew(lock, ttl: float, done: threading.Event) -> None:
    while not done.wait(ttl / 3):
        try:
            lock.reacquire()
        except (LockError, redis.RedisError):
            return  # lost or unreachable: it expires, as a dead holder's would
