"""Websocket consumers on the ASGI server: the serial console (a libvirt console stream) and the
screenshots of a VM page. Both need a logged-in session with the console right (the router's
Origin check runs first) and re-check it every CONSOLE_RECHECK_INTERVAL seconds."""
from __future__ import annotations

import asyncio
import json
import logging

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.addresses import scope_address
from accounts.audit import audit
from accounts.models import AuditAction
from consoles.selectors import console_allowed, grant_revoked_reason
from consoles.tokens import ConsoleGrant, hash_secret
from domains.models import Domain
from hosts.connection import connect_uri
from virt.connection import pool
from virt.consoles import SerialConsole, screenshot_png
from virt.errors import VirtError

logger = logging.getLogger(__name__)
CLOSE_FORBIDDEN = 4403
CLOSE_UNAVAILABLE = 4404
CLOSE_TAKEN_OVER = 4409
CLOSE_ENDED = 4410
LIBVIRT_TIMEOUT = 15  # seconds any one libvirt call of a consumer may take


class ConsoleConsumer(AsyncWebsocketConsumer):
    """Shared: who is connecting, the VM, and the watchdog that closes when the right goes."""

    grant: ConsoleGrant | None = None
    watchdog: asyncio.Task | None = None

    async def authorise(self) -> Domain | None:
        user = self.scope.get("user")
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None)
        if user is None or not user.is_authenticated or not session_key:
            return None
        domain = await database_sync_to_async(
            Domain.objects.select_related("host").filter(pk=self.scope["url_route"]["kwargs"]["pk"]).first)()
        if domain is None or not await database_sync_to_async(console_allowed)(user, domain):
            return None
        self.session_key = session_key
        self.grant = ConsoleGrant(user_id=user.pk, session_hash=hash_secret(session_key), domain_id=domain.pk,
                                  domain_uuid=str(domain.uuid), host_id=domain.host_id, graphics="")
        self.watchdog = asyncio.create_task(self._watch())
        return domain

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(settings.CONSOLE_RECHECK_INTERVAL)
            reason = await database_sync_to_async(grant_revoked_reason)(self.grant, self.session_key)
            if reason:
                await self.end("closed", f"Console closed: {reason}.", CLOSE_FORBIDDEN)
                return

    async def send_status(self, state: str, message: str) -> None:
        await self.send(text_data=json.dumps({"type": "status", "state": state, "message": message}))

    async def end(self, state: str, message: str, code: int) -> None:
        """Tell the page why its console ends, and close. The page may have gone meanwhile (its
        send then raises an OSError, as ASGI asks of a server): nothing is left to tell. Every
        path that ends a console comes here, tasks of their own among them, whose error nobody
        would read."""
        try:
            await self.send_status(state, message)
            await self.close(code)
        except OSError:
            pass

    async def disconnect(self, code: int) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()


class SerialConsoleConsumer(ConsoleConsumer):
    """The terminal page's socket: output as binary frames, input as text frames. Opening takes
    the console over: the session that had it is told who took it and closes."""

    console: SerialConsole | None = None
    sender: asyncio.Task | None = None
    taken_over = False

    async def connect(self) -> None:
        domain = await self.authorise()
        if domain is None:
            await self.close(CLOSE_FORBIDDEN)
            return
        await self.accept()
        await database_sync_to_async(audit)(None, AuditAction.CONSOLE_OPENED, user=self.scope["user"],
                                            target=f"{domain.name} on {domain.host.name}", detail="serial",
                                            address=scope_address(self.scope))
        self.output: asyncio.Queue[bytes] = asyncio.Queue()
        self.sender = asyncio.create_task(self._send_output())
        self.group = f"serial-console-{domain.pk}"
        self.holder_key = f"vmsite:serial-console-holder:{domain.pk}"
        # Who holds the console now, for the session whose stream the take-over ends to read.
        await self.redis().set(self.holder_key, json.dumps({"channel": self.channel_name,
                                                             "by": self.scope["user"].get_username()}), ex=86400)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_send(self.group, {"type": "console.taken_over", "channel": self.channel_name,
                                                         "by": self.scope["user"].get_username()})
        loop = asyncio.get_running_loop()
        try:
            self.console = await asyncio.wait_for(sync_to_async(self._open, thread_sensitive=False)(domain, loop),
                                                  LIBVIRT_TIMEOUT)
        except (VirtError, TimeoutError) as exc:
            await self.end("unavailable", str(exc) or "The host did not answer in time.", CLOSE_UNAVAILABLE)
            return
        logger.info("serial console of VM %s opened by user %s", domain.uuid, self.grant.user_id)
        await self.send_status("connected", f"Connected to {domain.name}'s serial console.")

    def _open(self, domain: Domain, loop: asyncio.AbstractEventLoop) -> SerialConsole:
        with pool().session(connect_uri(domain.host)) as conn:
            return SerialConsole(
                conn, str(domain.uuid),
                on_data=lambda data: loop.call_soon_threadsafe(self.output.put_nowait, data),
                on_closed=lambda reason: loop.call_soon_threadsafe(asyncio.ensure_future, self._stream_ended(reason)))

    async def _send_output(self) -> None:
        while True:
            chunks = [await self.output.get()]
            while not self.output.empty():
                chunks.append(self.output.get_nowait())
            try:
                await self.send(bytes_data=b"".join(chunks))
            except OSError:  # the page went away: its disconnect ends the session
                return

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        data = bytes_data if bytes_data is not None else (text_data or "").encode()
        if self.console is not None and data:
            try:
                await sync_to_async(self.console.send, thread_sensitive=False)(data[:4096])
            except VirtError as exc:
                await self.send_status("error", str(exc))

    async def console_taken_over(self, event: dict) -> None:
        if event["channel"] == self.channel_name or self.taken_over:
            return
        self.taken_over = True
        logger.info("serial console of VM %s taken over by %s", self.grant.domain_uuid, event["by"])
        if self.console is not None:
            self.console.detach()
        await self.end("taken_over", f"Taken over by {event['by']} in another window.", CLOSE_TAKEN_OVER)

    async def _stream_ended(self, reason: str) -> None:
        logger.info("serial console of VM %s (user %s): %s", self.grant.domain_uuid, self.grant.user_id, reason)
        holder = json.loads(await self.redis().get(self.holder_key) or "{}")
        if holder.get("channel") not in (None, self.channel_name):
            await self.console_taken_over(holder)
            return
        await self.end("closed", f"Console closed: {reason}.", CLOSE_ENDED)

    def redis(self) -> aioredis.Redis:
        if not hasattr(self, "_redis"):
            self._redis = aioredis.Redis.from_url(settings.REDIS_URL)
        return self._redis

    def _close_stream(self) -> None:
        if self.console is not None:
            self.console.close()

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        self._close_stream()
        if self.sender is not None:
            self.sender.cancel()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
            holder = json.loads(await self.redis().get(self.holder_key) or "{}")
            if holder.get("channel") == self.channel_name:
                await self.redis().delete(self.holder_key)
        if hasattr(self, "_redis"):
            await self._redis.aclose()


class ScreenshotConsumer(ConsoleConsumer):
    """Screenshots of one VM while a page shows it: one PNG (binary frame) every SCREENSHOT_INTERVAL
    seconds, shared through Redis by everyone looking at that VM, none when nobody looks."""

    sender: asyncio.Task | None = None

    async def connect(self) -> None:
        domain = await self.authorise()
        if domain is None:
            await self.close(CLOSE_FORBIDDEN)
            return
        await self.accept()
        self.sender = asyncio.create_task(self._send_screenshots(domain.pk))

    async def _send_screenshots(self, domain_id: int) -> None:
        cache = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            while True:
                await self._send_one(cache, domain_id)
                await asyncio.sleep(settings.SCREENSHOT_INTERVAL)
        except OSError:  # the page went away: its disconnect ends the session
            pass
        finally:
            await cache.aclose()

    async def _send_one(self, cache: aioredis.Redis, domain_id: int) -> None:
        domain = await database_sync_to_async(Domain.objects.select_related("host").filter(pk=domain_id).first)()
        if domain is None or not domain.is_active:
            await self.send_status("off", "The VM is off." if domain else "The VM is gone.")
            return
        key = f"vmsite:screenshot:{domain_id}"
        image = await cache.get(key)
        if image is None and await cache.set(f"{key}:taking", 1, nx=True, ex=LIBVIRT_TIMEOUT):
            try:
                image = await asyncio.wait_for(sync_to_async(_screenshot, thread_sensitive=False)(domain),
                                               LIBVIRT_TIMEOUT)
                await cache.set(key, image, ex=settings.SCREENSHOT_INTERVAL)
            except (VirtError, TimeoutError) as exc:
                await self.send_status("error", f"No screenshot: {exc or 'the host did not answer in time'}")
                return
            finally:
                await cache.delete(f"{key}:taking")
        if image is not None:
            await self.send(bytes_data=image)

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        if self.sender is not None:
            self.sender.cancel()


def _screenshot(domain: Domain) -> bytes:
    with pool().session(connect_uri(domain.host)) as conn:
        return screenshot_png(conn, str(domain.uuid))
