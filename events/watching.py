"""Whether live events flow for a host: a listener holds its lease (listener/lease.py writes them).

The key's name is the one thing the listener and its readers (the hosts page, tests) share, so it
lives here, on the side everything may import.
"""
from __future__ import annotations

import redis

LEASE_PREFIX = "vmsite:lease:host:"


def lease_key(host_id: int) -> str:
    return f"{LEASE_PREFIX}{host_id}"


def lease_holders(client: redis.Redis, host_ids: list[int]) -> dict[int, str | None]:
    """Who holds each host's lease now (for tests and the hosts page)."""
    values = client.mget([lease_key(host_id) for host_id in host_ids]) if host_ids else []
    return {host_id: value.decode() if value else None for host_id, value in zip(host_ids, values)}
