"""One Redis subscription per web process, fanned out to the process's live sockets.

A message is published once (events/publish.py) and arrives here once per process, as the JSON
text every socket will be sent. The hub reads the few fields the access rule needs once, builds the
one ASGI event all sockets are sent, and then, for each socket, only looks up the host (and VM) in
the scope that socket computed at connect and hands the event to the server: no database work, no
serialisation and no Channels layer per socket. A `host` message (a host came or went, a grant
changed) first makes every socket re-read its user's scope (one read per user, not per socket),
and only then is it, or any later message, delivered: a grant removed stops the next message.

If the subscription breaks, every socket is closed: the pages reconnect and refresh what they show,
as they do after any outage, and new sockets wait until the hub is subscribed again.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Awaitable, Callable, Protocol

import redis
import redis.asyncio
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model

from events.access import live_scopes

logger = logging.getLogger(__name__)

RETRY_START = 0.5
RETRY_MAX = 5.0
READY_TIMEOUT = 10.0
CLOSE_LIVE_UNAVAILABLE = 4503  # a server may send only 1000 or 3000-4999 (1011 is the server's own error)

Scope = tuple[bool, dict[int, set[int] | None]]  # (sees everything, host id -> None or its visible VM ids)


class LiveSocket(Protocol):
    user_id: int
    everything: bool
    scope_by_host: dict[int, set[int] | None]

    def wants(self, message: dict) -> bool: ...

    async def send_live(self, event: dict) -> None: ...  # an ASGI `websocket.send` event, shared by all sockets

    async def close_live(self, code: int) -> None: ...


class LiveHub:
    def __init__(self) -> None:
        self.sockets: set[LiveSocket] = set()
        self.ready = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.generation = 0  # scope re-reads begun

    async def join(self, socket: LiveSocket, read_scope: Callable[[], Awaitable[Scope]]) -> bool:
        """Start receiving for `socket`, with the scope `read_scope` reads for it; False if Redis
        cannot be reached (the socket should close)."""
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name="live-hub")
        try:
            await asyncio.wait_for(self.ready.wait(), READY_TIMEOUT)
        except asyncio.TimeoutError:
            return False
        while True:  # a re-read of every scope that began during ours may know of a grant ours missed
            generation = self.generation
            scope = await read_scope()
            if generation == self.generation:
                break
        socket.everything, socket.scope_by_host = scope
        self.sockets.add(socket)  # no await since the check: a later re-read includes this socket
        return True

    def leave(self, socket: LiveSocket) -> None:
        self.sockets.discard(socket)

    async def _run(self) -> None:
        retry = RETRY_START
        while True:
            client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(settings.LIVE_CHANNEL)
                    async for item in pubsub.listen():
                        if item["type"] == "subscribe":
                            self.ready.set()
                            retry = RETRY_START
                        elif item["type"] == "message":
                            await self._deliver(item["data"])
            except (redis.RedisError, OSError) as exc:
                logger.warning("live messages: subscription lost (%s); retrying in %.1f s", exc, retry)
            finally:
                self.ready.clear()
                await client.aclose()
            await self._close_all()
            await asyncio.sleep(retry)
            retry = min(retry * 2, RETRY_MAX)

    async def _deliver(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            event = {"type": "websocket.send", "text": data.decode()}
        except ValueError:
            logger.warning("live message not JSON: %r", data[:200])
            return
        if message.get("type") == "host":
            try:
                await self._rescope()
            except Exception:  # fail closed: the pages reconnect, and each socket reads its scope anew
                logger.exception("live scopes not re-read; closing this process's live sockets")
                await self._close_all()
                return
        for socket in list(self.sockets):
            try:
                if socket.wants(message):
                    await socket.send_live(event)
            except OSError:  # the page went away while the message was on its way (ASGI: the server raises an OSError)
                self.sockets.discard(socket)
                logger.debug("live socket closed before a message reached it")
            except Exception:  # one broken socket must not keep the message from the others
                logger.exception("live message not delivered to a socket")

    async def _rescope(self) -> None:
        """Re-read what each user may see, once per user, for every socket of this process."""
        self.generation += 1
        sockets = list(self.sockets)
        scopes = await database_sync_to_async(_scopes_by_user)({socket.user_id for socket in sockets})
        for socket in sockets:
            socket.everything, socket.scope_by_host = scopes.get(socket.user_id, (False, {}))

    async def _close_all(self) -> None:
        sockets, self.sockets = list(self.sockets), set()
        for socket in sockets:
            try:
                await socket.close_live(CLOSE_LIVE_UNAVAILABLE)
            except Exception:
                logger.exception("live socket not closed")


def _scopes_by_user(user_ids: set[int]) -> dict[int, Scope]:
    """Users are read afresh: one made inactive or deleted meanwhile sees nothing."""
    return {user.pk: live_scopes(user) for user in get_user_model().objects.filter(pk__in=user_ids)}


_hubs: dict[asyncio.AbstractEventLoop, LiveHub] = {}


def live_hub() -> LiveHub:
    """The hub of the running event loop (the web server runs one per process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        for stale in [other for other in _hubs if other.is_closed()]:
            del _hubs[stale]
        hub = _hubs[loop] = LiveHub()
    return hub
