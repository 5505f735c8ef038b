"""Failed logins are counted in Redis per user name and per address; past the limits, logins are
refused for a while without the password even being checked."""
from __future__ import annotations

import redis
from django.conf import settings

USER_LIMIT = 5  # failures for one user name within the window
ADDRESS_LIMIT = 20  # failures from one address, whatever the user names
_PREFIX = "vmsite:login-failures:"


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _keys(username: str, address: str | None) -> list[tuple[str, int]]:
    keys = [(f"{_PREFIX}user:{username.strip().lower()}", USER_LIMIT)]
    if address:
        keys.append((f"{_PREFIX}address:{address}", ADDRESS_LIMIT))
    return keys


def locked_for(username: str, address: str | None) -> int:
    """Seconds until this user name (or address) may try again; 0 when it may now."""
    client = _client()
    waits = [client.ttl(key) for key, limit in _keys(username, address) if int(client.get(key) or 0) >= limit]
    return max([wait for wait in waits if wait > 0], default=0)


def record_failure(username: str, address: str | None) -> None:
    pipe = _client().pipeline()
    for key, _limit in _keys(username, address):
        pipe.incr(key)
        pipe.expire(key, settings.LOGIN_LOCKOUT_SECONDS, nx=True)  # the window starts at the first failure
    pipe.execute()


def record_success(username: str) -> None:
    _client().delete(f"{_PREFIX}user:{username.strip().lower()}")


def address_locked_for(address: str | None) -> int:
    """Seconds until this address may try again (API tokens count against the address only)."""
    if not address:
        return 0
    client = _client()
    key = f"{_PREFIX}address:{address}"
    return max(client.ttl(key), 1) if int(client.get(key) or 0) >= ADDRESS_LIMIT else 0


def record_address_failure(address: str | None) -> None:
    if address:
        key = f"{_PREFIX}address:{address}"
        _client().pipeline().incr(key).expire(key, settings.LOGIN_LOCKOUT_SECONDS, nx=True).execute()
