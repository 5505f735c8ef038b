"""Downloads: a volume's bytes from libvirt's storage stream straight into the HTTP response.

A reader thread pulls chunks from the stream into a small queue that the response drains, so
reading from the host and writing to the browser overlap, and at most QUEUE_CHUNKS chunks wait
in memory. Nothing is written to disk on the web server.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.views import View

from hosts.connection import connect_uri
from accounts.access import OPERATE, VIEW, download_refusal, may
from storage.models import Volume
from virt.errors import NotFound, VirtError
from virt.streams import VolumeDownload

QUEUE_CHUNKS = 4  # of virt.streams' 4 MiB pieces
STOP_POLL_SECONDS = 0.5  # how soon a reader waiting for room in the queue sees that the response is gone
_END = object()


def _load(pk: int, user) -> tuple[Volume, str]:
    volume = Volume.objects.select_related("pool", "host", "record").filter(pk=pk).first()
    if volume is None or not may(user, VIEW, volume):
        raise Http404("No such volume")
    refusal = download_refusal(user, volume)
    if refusal:
        raise PermissionDenied(refusal)
    return volume, connect_uri(volume.host)


class DownloadBody:
    """The body of one download's response. A reader thread pulls the volume's chunks from libvirt
    into a small queue that the response drains; that thread is the only one that touches the
    libvirt stream, from its first read to its abort or finish. close() (Django calls it when the
    response ends, read to the end or left by the client) only tells it to stop: a response the
    server cancelled in the middle of a send leaves this generator at its yield, never resumed, so
    the reader must notice by itself, and does, within STOP_POLL_SECONDS."""

    def __init__(self, download: VolumeDownload) -> None:
        self.download = download
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._started = False

    def close(self) -> None:
        with self._lock:
            self.stop.set()
            if not self._started:  # no reader will ever run: the stream is closed here
                self.download.close()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with self._lock:
            if self.stop.is_set():
                return
            self._started = True
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(QUEUE_CHUNKS)
        reader = threading.Thread(target=self._read, args=(loop, queue), name="volume-download", daemon=True)
        reader.start()
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.stop.set()

    def _read(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        chunks = self.download.chunks()
        try:
            for data in chunks:
                if not self._hand_over(data, loop, queue):
                    break
            outcome = _END
        except BaseException as exc:  # handed to the response, which fails the download
            outcome = exc
        finally:
            chunks.close()  # aborts the stream if it did not finish
        self._hand_over(outcome, loop, queue)

    def _hand_over(self, item, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> bool:
        """Put item in the queue, waiting for room; False once the response is gone."""
        try:
            future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        except RuntimeError:  # the event loop is closed: the server is gone
            return False
        while not self.stop.is_set():
            try:
                future.result(timeout=STOP_POLL_SECONDS)
                return True
            except concurrent.futures.TimeoutError:
                continue
        future.cancel()
        return False


class VolumeDownloadView(View):
    """GET: the volume's contents as a file download, for an operator of its host or of the VM that
    owns it; a cloud-init seed for administrators only (checked in _load by accounts.access: this
    view is async, the Access mixin is not)."""

    need, kind = OPERATE, Volume

    async def get(self, request, pk: int):
        user = await request.auser()
        volume, uri = await sync_to_async(_load)(pk, user)
        try:
            download = await asyncio.to_thread(VolumeDownload, uri, str(volume.pool.uuid), volume.name)
        except NotFound as exc:
            return HttpResponse(f"The volume is no longer on its host ({exc}).", status=404,
                                content_type="text/plain")
        except VirtError as exc:
            return HttpResponse(f"The volume cannot be read from its host: {exc}", status=502,
                                content_type="text/plain")
        body = DownloadBody(download)
        response = StreamingHttpResponse(body, content_type="application/octet-stream")
        response["Content-Length"] = str(download.length)
        # Django closes the response whether or not its body was ever read: so does the transfer.
        response._resource_closers.append(body.close)
        response["Content-Disposition"] = content_disposition_header(True, volume.name)
        return response
