"""Uploads from the browser, as a session over a websocket.

Why a websocket and not a POST: Django's ASGI handler writes any request body over 2.5 MB
(FILE_UPLOAD_MAX_MEMORY_SIZE) into a temporary file before the view sees a byte of it. A websocket's
messages reach the application as they arrive, so each chunk goes straight into libvirt's
storage stream and the file never lands on the web server's disk.

The session is an Operation (the audit row and the progress bar) that the web process, not a
Celery worker, claims and runs: the bytes only exist in the socket that brings them.

1. POST to UploadStartView (validated by UploadForm): a pending `volume.upload` operation.
2. The browser opens /ws/storage/uploads/<operation id>/; the consumer checks the user, claims
   the operation, creates the volume if it is new, opens the stream and says {"type": "ready"}.
3. The browser sends the file as binary messages, a few in flight; each is acknowledged with
   {"type": "progress", "received": n} once libvirt has it.
4. After the last byte: {"type": "done", "sha256": ...}. A {"type": "cancel"} message or a
   closed socket aborts the stream; a volume created for the upload is deleted, an existing one
   is marked as holding a partial upload.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from datetime import timedelta

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from hosts.connection import connect_uri
from accounts.access import is_admin
from operations.choices import OperationState
from operations.models import Operation
from operations import services as operations
from storage import sync
from storage.choices import FILE_POOL_TYPES, UploadState
from storage.models import StoragePool, Volume
from storage.services import volume_mark_upload
from virt import storage as virt_storage
from virt.connection import pool as connection_pool
from storage.records import volume_record_made, volume_record_seen
from virt import images
from virt.devices import disk_format
from virt.errors import OperationInvalid, VirtError
from virt.volumes import volume_format, volume_key
from virt.streams import VolumeUpload
from vmsite.bulk_io import WEBSOCKET_MAX_MESSAGE

logger = logging.getLogger(__name__)

KIND = "volume.upload"
# What the browser sends per message: the largest message the web server is started to accept. Each message
# costs the web process a Channels dispatch, a thread hop and an acknowledgement: at 4 MiB they are
# a fraction of what they were at 1 MiB (bench/README.md).
CHUNK = WEBSOCKET_MAX_MESSAGE
WINDOW = 4  # messages the browser may have in flight: bounds what waits in the server's memory
STALE_AFTER = timedelta(minutes=10)  # a started upload whose browser never connected


@transaction.atomic
def upload_begin(*, pool: StoragePool, volume: Volume | None, name: str, size: int,
                 user: AbstractBaseUser, fmt: str = "raw") -> Operation:
    """The pending operation of an upload into a new volume (name, declared format fmt) or an
    existing one (which keeps its recorded format)."""
    Operation.objects.filter(kind=KIND, state=OperationState.PENDING,
                             created_at__lt=timezone.now() - STALE_AFTER).update(
        state=OperationState.CANCELLED, message="The browser never started sending", finished_at=timezone.now())
    target = volume if volume is not None else pool
    # Into an existing volume: one operation at a time on it, as for every other change. A new
    # volume has no row yet, and several uploads into one pool may run side by side.
    return operations.operation_enqueue(
        kind=KIND, target=target, label=str(volume) if volume is not None else f"{pool.name}/{name}",
        host=pool.host, user=user, exclusive=volume is not None, queue=False,
        arguments={"pool_id": pool.pk, "volume_id": volume.pk if volume else None,
                   "name": volume.name if volume else name, "size": size, "new": volume is None,
                   "format": fmt})


class UploadSession:
    """One upload's server side, outside any websocket detail (the benchmark drives it too)."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self.args = operation.arguments
        self.pool = StoragePool.objects.select_related("host").get(pk=self.args["pool_id"])
        self.uri = connect_uri(self.pool.host)
        self.size = int(self.args["size"])
        self.upload: VolumeUpload | None = None
        self.volume_id: int | None = self.args.get("volume_id")
        self.created = False
        self.uploaded = 0  # bytes in, once the transfer itself has finished
        self.format = self.args.get("format") or "raw"
        self.reported_at = 0.0

    def open(self) -> None:
        """Create the volume if it is new, refuse one in use, open the stream."""
        self._report(1, f"Preparing {self.args['name']}")
        with connection_pool().session(self.uri) as conn:
            handle = virt_storage.lookup_pool(conn, str(self.pool.uuid))
            if self.args["new"]:
                file_pool = self.pool.pool_type in FILE_POOL_TYPES
                made = virt_storage.pool_volume_create(handle, name=self.args["name"], capacity=self.size,
                                                       allocation=0 if file_pool else None,
                                                       fmt="raw" if file_pool else None)
                self.created = True
                # The declared format is the record from the start: a probe of the bytes never is.
                self.format = self.args.get("format") or "raw"
                volume_record_made(host=self.pool.host, key=volume_key(made), format=self.format)
            else:
                volume = virt_storage.lookup_volume(conn, str(self.pool.uuid), self.args["name"])
                users = virt_storage.volume_users(conn, volume)
                if users:
                    raise VirtError(f"The volume is in use by {', '.join(user.domain_name for user in users)}: "
                                    "nothing was uploaded.")
                self.format = volume_record_seen(host=self.pool.host, key=volume_key(volume),
                                                 seen_format=volume_format(volume)).format
            sync.pool_refresh_row(conn, self.pool)
        self.volume_id = Volume.objects.get(pool=self.pool, name=self.args["name"]).pk
        volume_mark_upload(volume_id=self.volume_id, state=UploadState.UPLOADING, note="upload in progress", sha256="")
        self.upload = VolumeUpload(self.uri, str(self.pool.uuid), self.args["name"], self.size)

    def write(self, data: bytes) -> int:
        """Send bytes to libvirt (no database work: this runs once per chunk)."""
        return self.upload.write(data)

    def progress_due(self) -> bool:
        """Twice a second: the operation's progress bar, and its heartbeat."""
        return time.monotonic() - self.reported_at > 0.5

    def report_progress(self) -> None:
        self.reported_at = time.monotonic()
        sent = self.upload.sent
        self._report(2 + 96 * sent // max(1, self.size), f"Uploaded {sent} of {self.size} bytes")

    @property
    def complete(self) -> bool:
        return self.upload is not None and self.upload.sent == self.size

    def finish(self) -> str:
        """Complete the transfer, then read the new contents' header as the declared format: an
        image that reaches outside its pool (or is not of that format) is refused like a cut-off one."""
        digest = self.upload.finish()
        with connection_pool().session(self.uri) as conn:
            volume = virt_storage.lookup_volume(conn, str(self.pool.uuid), self.args["name"])
            try:
                images.require_format(conn, volume, fmt=self.format, label=f"{self.pool.name}/{self.args['name']}")
                images.require_contained(conn, volume, fmt=disk_format(self.format),
                                         label=f"{self.pool.name}/{self.args['name']}",
                                         pool_path=images.pool_path_of(volume))
            except OperationInvalid:
                self.uploaded = self.size  # every byte is in; what is left to do is the refusal
                self.upload = None
                raise
            virt_storage.refresh_pool(virt_storage.lookup_pool(conn, str(self.pool.uuid)))
            sync.pool_refresh_row(conn, self.pool)
        volume_mark_upload(volume_id=self.volume_id, state=UploadState.NONE, note="", sha256=digest)
        operations.operation_succeed(operation_id=self.operation.pk,
                                     message=f"Uploaded {self.size} bytes, SHA-256 {digest}")
        return digest

    def abort(self, reason: str) -> None:
        """Stop, and leave nothing that looks complete: a new volume goes, an existing one is marked."""
        sent = self.upload.sent if self.upload else self.uploaded
        if self.upload is not None:
            self.upload.abort()
        error = f"{reason} after {sent} of {self.size} bytes." if sent < self.size else f"{reason}."
        try:
            if self.created:
                with connection_pool().session(self.uri) as conn:
                    virt_storage.delete_volume(virt_storage.lookup_volume(conn, str(self.pool.uuid), self.args["name"]))
                    sync.pool_refresh_row(conn, self.pool)
                error += " The new volume was removed."
            elif self.volume_id is not None and (self.upload is not None or sent):
                volume_mark_upload(volume_id=self.volume_id, state=UploadState.INCOMPLETE,
                                   note=f"Upload cut off at {sent} of {self.size} bytes: the contents are partial."
                                   if sent < self.size else f"Upload refused: {reason}")
                error += " The volume is marked as holding a partial upload."
        except VirtError as exc:
            error += f" Cleaning up failed: {exc}"
            if self.volume_id is not None:
                volume_mark_upload(volume_id=self.volume_id, state=UploadState.INCOMPLETE,
                                   note=f"Upload cut off at {sent} of {self.size} bytes: the contents are partial.")
        operations.operation_fail(operation_id=self.operation.pk, error=error, message="Upload stopped")

    def _report(self, progress: int, message: str) -> None:
        operations.operation_report(operation_id=self.operation.pk, progress=progress, message=message)


def claim_upload(operation_id: int, user) -> Operation | None:
    """The user's pending upload, now running in this process; None if it is not theirs or not pending."""
    operation = Operation.objects.filter(pk=operation_id, kind=KIND, user_id=user.pk).first()
    if operation is None or not is_admin(user):  # changing volumes is for administrators
        return None
    worker = f"web {socket.gethostname()} pid {os.getpid()}"
    if not operations.operation_claim(operation_id=operation.pk, worker=worker):
        return None
    return operation


class VolumeUploadConsumer(AsyncWebsocketConsumer):
    # No channel layer: nothing is ever sent to an upload through it, and its Redis subscription
    # would only add a way to fail (a Redis read that times out while the loop is busy ends the
    # consumer, and so the upload).
    channel_layer_alias = "none: uploads use no channel layer"
    session: UploadSession | None = None
    finished = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        operation = await database_sync_to_async(claim_upload)(int(self.scope["url_route"]["kwargs"]["operation_id"]),
                                                               user)
        if operation is None:
            await self.close(code=4403)
            return
        await self.accept()
        self.session = await database_sync_to_async(UploadSession)(operation)
        try:
            await asyncio.to_thread(self._in_thread, self.session.open)
        except VirtError as exc:
            await self._stop(f"Could not start: {exc}")
            return
        await self._say({"type": "ready", "chunk": CHUNK, "window": WINDOW})

    async def dispatch(self, message: dict) -> None:
        # Channels runs close_old_connections() in its thread before every message: a thread hop per
        # chunk, for chunks that touch no database (the progress report uses database_sync_to_async).
        if message["type"] == "websocket.receive" and message.get("bytes") is not None:
            await self.receive(bytes_data=message["bytes"])
        else:
            await super().dispatch(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.finished or self.session is None:
            return
        if text_data is not None:
            if json.loads(text_data).get("type") == "cancel":
                await self._stop("Cancelled by the user")
            return
        try:
            received = await asyncio.to_thread(self.session.write, bytes_data)
        except (VirtError, ValueError) as exc:
            await self._stop(f"Upload failed: {exc}")
            return
        if not await self._say({"type": "progress", "received": received}):
            return
        if self.session.progress_due():
            await database_sync_to_async(self.session.report_progress)()
        if self.session.complete:
            try:
                digest = await asyncio.to_thread(self._in_thread, self.session.finish)
            except VirtError as exc:
                await self._stop(f"Upload failed at the end: {exc}")
                return
            self.finished = True
            await self._say({"type": "done", "sha256": digest, "bytes": self.session.size,
                             "volume": f"/storage/volumes/{self.session.volume_id}/"})
            await self.close()

    async def disconnect(self, code: int) -> None:
        if self.session is not None and not self.finished:
            await self._stop("The connection was cut off", notify=False)

    async def _stop(self, reason: str, *, notify: bool = True) -> None:
        self.finished = True
        await asyncio.to_thread(self._in_thread, self.session.abort, reason)
        if notify and await self._say({"type": "error", "message": reason}):
            await self.close()

    async def _say(self, message: dict) -> bool:
        """Send a message; a socket the browser already closed ends the upload as cut off."""
        try:
            await self.send(json.dumps(message))
        except OSError:  # ASGI: a send on a socket the browser closed raises an OSError
            if not self.finished:
                await self._stop("The connection was cut off", notify=False)
            return False
        return True

    @staticmethod
    def _in_thread(function, *args):
        """Run in a worker thread with its own database connection, closed afterwards."""
        from django.db import close_old_connections, connection

        close_old_connections()
        try:
            return function(*args)
        finally:
            connection.close()
