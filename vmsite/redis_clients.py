"""Redis clients for short calls made on requests and in tasks (lockout counts, console tokens, host
leases, operation locks): one connection pool per process for each URL and set of timeouts.

A client made per call opens a new TCP connection each time and sends HELLO and CLIENT SETINFO on
it, for which redis-py reads its own version from the package's metadata: about 8 ms a call here,
paid by every API request's token check. A pool keeps its connections and is safe to share between
threads; after a fork redis-py gives the child new connections of its own."""
from __future__ import annotations

import functools

import redis
from django.conf import settings


def redis_client(*, socket_timeout: float | None = None, socket_connect_timeout: float | None = None) -> redis.Redis:
    """A client of settings.REDIS_URL on this process's pool for these timeouts."""
    return redis.Redis(connection_pool=_pool(settings.REDIS_URL, socket_timeout, socket_connect_timeout))


@functools.lru_cache(maxsize=None)
def _pool(url: str, socket_timeout: float | None, socket_connect_timeout: float | None) -> redis.ConnectionPool:
    return redis.ConnectionPool.from_url(url, socket_timeout=socket_timeout,
                                         socket_connect_timeout=socket_connect_timeout)
