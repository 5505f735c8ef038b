"""The browser's live socket: one per open page, fed by its process's hub (events/hub.py).

The ASGI router in front (vmsite/asgi.py) already refuses a foreign or missing Origin; this
consumer refuses a socket without a logged-in session and computes, once, which hosts and VMs its
user may see; the hub re-reads that on every `host` message (a host or a grant came or went), so a
socket never receives messages about a host its user may not see. The hub sends each message's one
prebuilt ASGI event to the server through the socket's outbox (`send_live`, see KeepServerSend).
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from events.access import live_scopes, may_watch_inventory, socket_wants
from events.hub import CLOSE_LIVE_UNAVAILABLE, live_hub

CLOSE_NOT_LOGGED_IN = 4401
HELLO = json.dumps({"type": "hello"})
PONG = json.dumps({"type": "pong"})
SERVER_SEND = "vmsite.server_send"


class KeepServerSend:
    """ASGI middleware, outermost on the websocket side (vmsite/asgi.py): puts the server's own `send`
    in the scope, so that the live socket sends its messages past Channels' session middleware.

    That middleware wraps `send` to save the session and set its cookie on an HTTP response; a
    websocket message never does either, yet each one paid for the check (the lazy session read
    twice, the settings) on every socket, for every message of every process's hub."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        return await self.inner({**scope, SERVER_SEND: send}, receive, send)


def send_ready_probe(send) -> Callable[[], bool]:
    """Whether a send through the server's `send` now returns without waiting. uvicorn's websocket
    protocol (the bound method's owner) waits only while its transport's buffer is over its mark,
    with its `writable` event clear. Any other server, or another uvicorn: never known, and every
    message goes through the socket's outbox (events/hub.py), which is slower but never waits."""
    writable = getattr(getattr(send, "__self__", None), "writable", None)
    return writable.is_set if isinstance(writable, asyncio.Event) else _never


def _never() -> bool:
    return False


class LiveConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = "none: live messages come through the hub, not a channel layer"

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not await database_sync_to_async(may_watch_inventory)(user):
            await self.close(code=CLOSE_NOT_LOGGED_IN)  # before accept: the handshake is refused (403)
            return
        self.user_id = user.pk
        self.send_live = self.scope.get(SERVER_SEND, self.base_send)
        self.ready_to_send = send_ready_probe(self.send_live)
        await self.accept()
        self.hub = live_hub()
        if not await self.hub.join(self, lambda: database_sync_to_async(live_scopes)(user)):
            await self.close(code=CLOSE_LIVE_UNAVAILABLE)  # Redis is away: the page retries, and refreshes once back
            return
        await self.send(text_data=HELLO)

    async def disconnect(self, code: int) -> None:
        hub = getattr(self, "hub", None)
        if hub is not None:
            hub.leave(self)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            content = json.loads(text_data or "null")
        except ValueError:
            return
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send(text_data=PONG)

    def wants(self, message: dict) -> bool:
        return socket_wants(message, everything=self.everything, scope_by_host=self.scope_by_host)

    async def close_live(self, code: int) -> None:
        await self.close(code=code)
