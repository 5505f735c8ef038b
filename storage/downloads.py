"""Downloads: a volume's bytes from libvirt's storage stream straight into the HTTP response.

A reader thread pulls chunks from the stream into a small queue that the response drains, so
reading from the host and writing to the browser overlap, and at most QUEUE_CHUNKS chunks wait
in memory. Nothing is written to disk on the web server.
"""
from __future__ import annotations

import asyncio
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
_END = object()


def _load(pk: int, user) -> tuple[Volume, str]:
    volume = Volume.objects.select_related("pool", "host", "record").filter(pk=pk).first()
    if volume is None or not may(user, VIEW, volume):
        raise Http404("No such volume")
    refusal = download_refusal(user, volume)
    if refusal:
        raise PermissionDenied(refusal)
    return volume, connect_uri(volume.host)


async def stream_volume(download: VolumeDownload) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(QUEUE_CHUNKS)
    stop = threading.Event()

    def read() -> None:
        chunks = download.chunks()
        try:
            for data in chunks:
                if stop.is_set():
                    break
                asyncio.run_coroutine_threadsafe(queue.put(data), loop).result()
            outcome = _END
        except BaseException as exc:  # handed to the response below, which fails the download
            outcome = exc
        finally:
            chunks.close()  # aborts the stream if it did not finish
        if not stop.is_set():
            asyncio.run_coroutine_threadsafe(queue.put(outcome), loop).result()

    reader = threading.Thread(target=read, name="volume-download", daemon=True)
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
        stop.set()
        while not queue.empty():  # let a reader blocked on a full queue see the stop
            queue.get_nowait()


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
        response = StreamingHttpResponse(stream_volume(download), content_type="application/octet-stream")
        response["Content-Length"] = str(download.length)
        # Django closes the response whether or not its body was ever read: so does the transfer.
        response._resource_closers.append(download.close)
        response["Content-Disposition"] = content_disposition_header(True, volume.name)
        return response
