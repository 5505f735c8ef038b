"""One-use console tokens: random, short-lived, kept in Redis only as their SHA-256 hash.

A token grants one connection to one VM's console, for the user (and login session) it was issued
to. Redis holds the grant under the token's hash, so neither Redis nor a dump of it can hand out
a console; taking the grant is an atomic GETDEL, so a token works once.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass

import redis
from django.conf import settings

from vmsite.redis_clients import redis_client

TOKEN_BYTES = 32  # 256 bits
KEY_PREFIX = "vmsite:console-token:"


@dataclass(frozen=True)
class ConsoleGrant:
    """What a token is bound to: who, which login session, which VM on which host, which display."""

    user_id: int
    session_hash: str  # SHA-256 of the session key: a stolen token needs the victim's cookie too
    domain_id: int
    domain_uuid: str
    host_id: int
    graphics: str  # vnc (the display the proxy connects to; the browser never names host or port)


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def token_store(grant: ConsoleGrant) -> str:
    """Store the grant in Redis under a fresh one-time token and return the token (the low-level half of
    `consoles.services.console_token_issue`, which checks the user first)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    stored = _redis().set(KEY_PREFIX + hash_secret(token), json.dumps(asdict(grant)), ex=settings.CONSOLE_TOKEN_TTL, nx=True)
    if not stored:  # 256 random bits never collide; refuse rather than overwrite if they ever do
        raise RuntimeError("console token collision")
    return token


def token_take(token: str) -> ConsoleGrant | None:
    """The grant behind the token, removed in the same step; None when unknown, used or expired."""
    if not token or len(token) > 100:
        return None
    raw = _redis().getdel(KEY_PREFIX + hash_secret(token))
    if raw is None:
        return None
    return ConsoleGrant(**json.loads(raw))


def _redis() -> redis.Redis:
    return redis_client()
