"""Failed logins are counted in Redis per user name and per address, and wrong second-factor codes
per user name on a counter of their own; past the limits, logins are refused for a while.

Every attempt is counted before it is checked (INCR, then refuse when over the limit, then check):
attempts sent side by side cannot all slip in before the first failure is counted, so at most the
limit's worth of passwords or codes is ever checked in a window. A success takes its own attempt
back off the address's count, so people logging in do not use up their address's allowance.

API tokens have their own per-address counter: a valid token is never refused because passwords
failed from its address.

Without Redis nothing can be counted, so nothing is checked: every function here then raises
vmsite.outages.ServiceUnavailable, and the login (or the token) is refused with those words."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis
from django.conf import settings

from vmsite.outages import redis_down
from vmsite.redis_clients import redis_client

USER_LIMIT = 5  # password attempts for one user name within the window
ADDRESS_LIMIT = 20  # failed attempts from one address, whatever the user names
SECOND_FACTOR_LIMIT = 5  # second-factor codes for one user name within the window
TOKEN_ADDRESS_LIMIT = 20  # wrong API tokens from one address
_PREFIX = "vmsite:login-failures:"  # tests clear keys under it

# Takes one attempt back, never below zero, and keeps the window (DECR keeps the key's TTL).
_UNCOUNT = """
if tonumber(redis.call('get', KEYS[1]) or '0') > 0 then return redis.call('decr', KEYS[1]) end
return 0
"""


STORE_DOWN = "logins and API tokens are refused while the lockout store cannot count attempts."

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _client() -> redis.Redis:
    return redis_client(socket_connect_timeout=5, socket_timeout=5)


def _counted(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """A Redis outage in `function` becomes ServiceUnavailable: never let an attempt through unchecked."""
    @functools.wraps(function)
    def counted(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return function(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise redis_down(STORE_DOWN) from exc
    return counted


def _user_key(username: str) -> str:
    return f"{_PREFIX}user:{username.strip().lower()}"


def _second_factor_key(username: str) -> str:
    return f"{_PREFIX}second-factor:{username.strip().lower()}"


def _address_key(address: str) -> str:
    return f"{_PREFIX}address:{address}"


def _token_key(address: str) -> str:
    return f"{_PREFIX}token-address:{address}"


def _attempt(keys: list[tuple[str, int]]) -> int:
    """Count one attempt on every key, then the seconds until it may be tried again: 0 when every
    count is within its limit (the attempt may go on and be checked)."""
    client = _client()
    pipe = client.pipeline(transaction=True)
    for key, _limit in keys:
        pipe.incr(key)
        pipe.expire(key, settings.LOGIN_LOCKOUT_SECONDS, nx=True)  # the window starts at the first attempt
    counts = pipe.execute()[0::2]
    over = [key for (key, limit), count in zip(keys, counts) if count > limit]
    return max((max(client.ttl(key), 1) for key in over), default=0)


def _uncount(address: str | None) -> None:
    if address:
        _client().eval(_UNCOUNT, 1, _address_key(address))


@_counted
def password_attempt(username: str, address: str | None) -> int:
    """Counts a password attempt for the user name and the address; seconds to wait, or 0 to check it."""
    keys = [(_user_key(username), USER_LIMIT)]
    if address:
        keys.append((_address_key(address), ADDRESS_LIMIT))
    return _attempt(keys)


@_counted
def password_accepted(username: str, address: str | None) -> None:
    """The password was right: the user name's count starts again (the second factor's does not)."""
    _client().delete(_user_key(username))
    _uncount(address)


@_counted
def second_factor_attempt(username: str, address: str | None) -> int:
    """Counts a second-factor code for the user name and the address; seconds to wait, or 0 to check it."""
    keys = [(_second_factor_key(username), SECOND_FACTOR_LIMIT)]
    if address:
        keys.append((_address_key(address), ADDRESS_LIMIT))
    return _attempt(keys)


@_counted
def login_completed(username: str, address: str | None) -> None:
    """Password and code were right: only a complete login resets the second factor's count."""
    _client().delete(_user_key(username), _second_factor_key(username))
    _uncount(address)


@_counted
def token_locked_for(address: str | None) -> int:
    """Seconds until this address may send tokens again after too many wrong ones."""
    if not address:
        return 0
    client = _client()
    key = _token_key(address)
    return max(client.ttl(key), 1) if int(client.get(key) or 0) >= TOKEN_ADDRESS_LIMIT else 0


@_counted
def record_token_failure(address: str | None) -> None:
    if address:
        key = _token_key(address)
        _client().pipeline().incr(key).expire(key, settings.LOGIN_LOCKOUT_SECONDS, nx=True).execute()
