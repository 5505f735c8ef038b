"""One Redis subscription per web process, fanned out to the process's live sockets.

A message is published once (events/publish.py) and arrives here once per process, as the JSON
text every socket will be sent. The hub reads the few fields the access rule needs once, builds the
one ASGI event all sockets are sent, and then, for each socket, only looks up the host (and VM) in
the scope that socket computed at connect and hands the event to the server: no database work, no
serialisation and no Channels layer per socket. A `host` message (a host came or went, a grant
changed) first makes every socket re-read its user's scope (one read per user, not per socket),
and only then is it, or any later message, delivered: a grant removed stops the next message.

A message is handed to a socket's server send at once when that send will not wait (the socket's
`ready_to_send`, events/consumers.py); otherwise it goes into the socket's outbox, a queue sent in
order by a task of its own. So a client that stops reading (its connection's buffers full, the
server's send waiting) holds up only its own messages, and the usual case costs no task switch. A
socket MAX_BACKLOG messages behind is closed with CLOSE_TOO_SLOW as soon as its client reads again
(or when its connection ends); its page reconnects and refreshes what it shows. The queued events
are the ones every socket is sent, so a backlog holds references, not copies.

If the subscription breaks, every socket is closed: the pages reconnect and refresh what they show,
as they do after any outage, and new sockets wait until the hub is subscribed again.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
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
CLOSE_TOO_SLOW = 4408  # the client did not read its messages: MAX_BACKLOG of them were waiting
MAX_BACKLOG = 10_000

Scope = tuple[bool, dict[int, set[int] | None]]  # (sees everything, host id -> None or its visible VM ids)


class LiveSocket(Protocol):
    user_id: int
    everything: bool
    scope_by_host: dict[int, set[int] | None]

    def wants(self, message: dict) -> bool: ...

    def ready_to_send(self) -> bool: ...  # whether send_live now returns without waiting

    async def send_live(self, event: dict) -> None: ...  # an ASGI `websocket.send` event, shared by all sockets

    async def close_live(self, code: int) -> None: ...


class Outbox:
    """A socket's messages on their way, sent in order by a task of its own."""

    def __init__(self, socket: LiveSocket, on_gone: Callable[[LiveSocket], None]) -> None:
        self.socket = socket
        self.on_gone = on_gone
        self.events: deque[dict] = deque()
        self.close_code: int | None = None
        self.waiting = asyncio.Event()  # something to send
        self.idle = asyncio.Event()  # nothing queued and no send under way
        self.idle.set()
        self.task: asyncio.Task | None = None  # started by the first message that has to wait

    def put(self, event: dict) -> None:
        """Queue the event; close the socket instead when MAX_BACKLOG are waiting."""
        if len(self.events) >= MAX_BACKLOG:
            logger.warning("live socket %d messages behind: closing it", len(self.events))
            self.close(CLOSE_TOO_SLOW)
            return
        self.events.append(event)
        self._wake()

    def close(self, code: int) -> None:
        """The socket leaves the hub now (no later message is queued for it); what is queued is
        dropped, and the socket closed after the send under way, if any."""
        self.on_gone(self.socket)
        self.events.clear()
        self.close_code = code
        self._wake()

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _wake(self) -> None:
        self.idle.clear()
        self.waiting.set()
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._send_all(), name="live-socket")

    async def _send_all(self) -> None:
        while True:
            await self.waiting.wait()
            self.waiting.clear()
            while self.events:
                if not await self._send(self.events.popleft()):
                    return
            if self.close_code is not None:
                await self._close()
                return
            self.idle.set()

    async def send_now(self, event: dict) -> None:
        """Hand the event to the socket's server send, here and now: when nothing is queued before it
        and the send will not wait."""
        if not await self._send(event):
            self.stop()

    async def _send(self, event: dict) -> bool:
        try:
            await self.socket.send_live(event)
        except OSError:  # the page went away while the message was on its way (ASGI: the server raises an OSError)
            logger.debug("live socket closed before a message reached it")
            self.on_gone(self.socket)
            self.idle.set()
            return False
        except Exception:  # one broken message must not stop the socket's later ones
            logger.exception("live message not delivered to a socket")
        return True

    def can_send_now(self) -> bool:
        return self.idle.is_set() and self.socket.ready_to_send()

    async def _close(self) -> None:
        try:
            await self.socket.close_live(self.close_code)
        except Exception:
            logger.exception("live socket not closed")
        self.idle.set()


class LiveHub:
    def __init__(self) -> None:
        self.sockets: dict[LiveSocket, Outbox] = {}
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
        self.sockets[socket] = Outbox(socket, self._forget)  # no await since the check: a later re-read includes it
        return True

    def leave(self, socket: LiveSocket) -> None:
        outbox = self.sockets.pop(socket, None)
        if outbox is not None:
            outbox.stop()

    def _forget(self, socket: LiveSocket) -> None:
        self.sockets.pop(socket, None)

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
            self._close_all()
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
                self._close_all()
                return
        for socket, outbox in list(self.sockets.items()):
            try:
                if not socket.wants(message):
                    continue
                if outbox.can_send_now():
                    await outbox.send_now(event)
                else:
                    outbox.put(event)
            except Exception:  # one broken socket must not keep the message from the others
                logger.exception("live message not delivered to a socket")
        # The outboxes send before the next message is read (Redis may hand over a burst without
        # waiting): a client that reads never has more than this message queued.
        await asyncio.sleep(0)

    async def _rescope(self) -> None:
        """Re-read what each user may see, once per user, for every socket of this process."""
        self.generation += 1
        sockets = list(self.sockets)
        scopes = await database_sync_to_async(_scopes_by_user)({socket.user_id for socket in sockets})
        for socket in sockets:
            socket.everything, socket.scope_by_host = scopes.get(socket.user_id, (False, {}))

    def _close_all(self) -> None:
        for outbox in list(self.sockets.values()):
            outbox.close(CLOSE_LIVE_UNAVAILABLE)  # each leaves the hub at once


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
