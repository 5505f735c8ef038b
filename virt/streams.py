"""Volume contents through libvirt's storage streams, so that uploads and downloads work on
remote hosts too and never pass through a file on the machine running vmsite.

Each transfer runs on a private connection: a long transfer then never queues behind, or in
front of, the other calls the process makes to the same host.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator

import libvirt

from virt.connection import close_quietly, open_monitored
from virt.errors import translated
from virt.storage import lookup_volume

CHUNK = 1024 * 1024


class VolumeUpload:
    """Bytes written in order into one volume, from offset 0; the SHA-256 of what was sent.
    finish() when every byte is in, abort() otherwise; both close the connection."""

    def __init__(self, uri: str, pool_uuid: str, volume_name: str, length: int) -> None:
        self.length = length
        self.sent = 0
        self.digest = hashlib.sha256()
        self.conn = open_monitored(uri, on_close=lambda reason: None)  # a lost host fails the next send
        try:
            with translated():
                volume = lookup_volume(self.conn, pool_uuid, volume_name)
                self.stream = self.conn.newStream(0)
                volume.upload(self.stream, 0, length, 0)
        except BaseException:
            close_quietly(self.conn)
            raise

    def write(self, data: bytes) -> int:
        """Send data; returns the bytes sent so far. More than the announced length is refused."""
        if self.sent + len(data) > self.length:
            raise ValueError(f"more bytes than announced ({self.length})")
        with translated():
            view = memoryview(data)
            while view:
                count = self.stream.send(bytes(view[:CHUNK]) if len(view) > CHUNK else bytes(view))
                view = view[count:]
        self.digest.update(data)
        self.sent += len(data)
        return self.sent

    def finish(self) -> str:
        """Close the stream once every byte is in; returns the hex SHA-256."""
        if self.sent != self.length:
            raise ValueError(f"only {self.sent} of {self.length} bytes were sent")
        try:
            with translated():
                self.stream.finish()
        finally:
            close_quietly(self.conn)
        return self.digest.hexdigest()

    def abort(self) -> None:
        try:
            self.stream.abort()
        except libvirt.libvirtError:
            pass  # the stream is already broken: aborting it is all that was wanted
        finally:
            close_quietly(self.conn)


def download_chunks(uri: str, pool_uuid: str, volume_name: str, *, chunk: int = CHUNK) -> Iterator[bytes]:
    """The volume's bytes, in chunks as libvirt sends them. Closing the generator early aborts."""
    conn = open_monitored(uri, on_close=lambda reason: None)
    stream = None
    try:
        with translated():
            volume = lookup_volume(conn, pool_uuid, volume_name)
            stream = conn.newStream(0)
            volume.download(stream, 0, 0, 0)
            while True:
                data = stream.recv(chunk)
                if not data:
                    break
                yield data
            stream.finish()
            stream = None
    finally:
        if stream is not None:
            try:
                stream.abort()
            except libvirt.libvirtError:
                pass
        close_quietly(conn)


def volume_sha256(uri: str, pool_uuid: str, volume_name: str, *, size: int, progress) -> str:
    digest = hashlib.sha256()
    done = 0
    for data in download_chunks(uri, pool_uuid, volume_name):
        digest.update(data)
        done += len(data)
        progress(done / size if size else 1.0)
    return digest.hexdigest()
