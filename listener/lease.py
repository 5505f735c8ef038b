"""Which listener watches which host: leases in Redis, shared out evenly among live listeners.

Each listener announces itself in a sorted set (score: its last beat) and holds one key per host
it owns (`SET NX PX`, the key named by events/watching.py, renewed only by its holder, through a
compare-and-set script). Each round it drops listeners that stopped beating, works out its fair
share (hosts / live listeners, rounded up), gives back leases above it and takes free ones up to it.
A listener that dies stops renewing: its leases expire after settings.LISTENER_LEASE_SECONDS and the
others take them on their next round, so a host is watched again within that plus ROUND_SECONDS.
"""
from __future__ import annotations

import math
import os
import socket
import time
import uuid

import redis
from django.conf import settings

from events.watching import lease_key

ROUND_SECONDS = 2.0  # a lost host is taken over within LISTENER_LEASE_SECONDS + ROUND_SECONDS
LISTENERS_KEY = "vmsite:listeners"

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def new_listener_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class HostLeases:
    def __init__(self, client: redis.Redis, listener_id: str) -> None:
        self.client = client
        self.listener_id = listener_id
        self.held: set[int] = set()
        self.lease_seconds = float(settings.LISTENER_LEASE_SECONDS)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def rebalance(self, host_ids: set[int]) -> set[int]:
        """One round: beat, renew, give back, take. Returns the hosts this listener owns now."""
        listeners = self._beat()
        ttl_ms = int(self.lease_seconds * 1000)
        for host_id in sorted(self.held):
            if host_id not in host_ids or not self._renew(keys=[lease_key(host_id)], args=[self.listener_id, ttl_ms]):
                self._give_back(host_id)
        share = math.ceil(len(host_ids) / max(listeners, 1))
        for host_id in sorted(self.held, reverse=True)[: max(len(self.held) - share, 0)]:
            self._give_back(host_id)  # too many: another listener joined
        for host_id in sorted(host_ids - self.held):
            if len(self.held) >= share:
                break
            if self.client.set(lease_key(host_id), self.listener_id, nx=True, px=ttl_ms):
                self.held.add(host_id)
        return set(self.held)

    def release_all(self) -> None:
        for host_id in list(self.held):
            self._give_back(host_id)
        self.client.zrem(LISTENERS_KEY, self.listener_id)

    def _give_back(self, host_id: int) -> None:
        self._release(keys=[lease_key(host_id)], args=[self.listener_id])
        self.held.discard(host_id)

    def _beat(self) -> int:
        now = time.time()
        pipe = self.client.pipeline()
        pipe.zadd(LISTENERS_KEY, {self.listener_id: now})
        pipe.zremrangebyscore(LISTENERS_KEY, "-inf", now - self.lease_seconds)
        pipe.zcard(LISTENERS_KEY)
        return int(pipe.execute()[-1])

