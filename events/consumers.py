"""The browser's live socket: one per open page, joined to the groups of the hosts its user may see.

The ASGI router in front (vmsite/asgi.py) already refuses a foreign or missing Origin; this
consumer refuses a socket without a logged-in session, and re-reads the user's hosts when a host
is added or removed, so that a socket never receives messages about a host its user may not see.
"""
from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.access import is_admin
from events.access import message_visible, may_watch_inventory, visible_scope
from events.publish import ALL_HOSTS_GROUP, host_group

CLOSE_NOT_LOGGED_IN = 4401


class LiveConsumer(AsyncJsonWebsocketConsumer):
    groups: list[str] = []

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not await database_sync_to_async(may_watch_inventory)(user):
            await self.close(code=CLOSE_NOT_LOGGED_IN)  # before accept: the handshake is refused (403)
            return
        self.joined: set[str] = set()
        self.scope_by_host: dict[int, set[int] | None] = {}
        await self.accept()
        await self._join_visible_groups()
        await self.send_json({"type": "hello"})

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        if content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def live_message(self, event: dict) -> None:
        message = event["message"]
        host_id = message.get("host")
        if message.get("type") == "host":
            await self._join_visible_groups()  # a host or a grant came or went: this user's set may differ
            host_id = message.get("id")
        if host_id is not None and not self.everything and (host_id not in self.scope_by_host
                                    or not message_visible(message, self.scope_by_host[host_id])):
            return
        await self.send_json(message)

    async def _join_visible_groups(self) -> None:
        self.everything = await database_sync_to_async(is_admin)(self.scope["user"])
        self.scope_by_host = await database_sync_to_async(visible_scope)(self.scope["user"])
        wanted = {ALL_HOSTS_GROUP, *(host_group(pk) for pk in self.scope_by_host)}
        for group in wanted - self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        for group in self.joined - wanted:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.joined = wanted
