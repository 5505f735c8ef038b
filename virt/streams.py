"""Volume contents through libvirt's storage streams, so that uploads and downloads work on
remote hosts too and never pass through a file on the machine running vmsite.

Each transfer runs on a private connection: a long transfer then never queues behind, or in
front of, the other calls the process makes to the same host.
"""
from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import libvirt

from virt.checksums import new_hasher
from virt.connection import close_quietly, open_monitored
from virt.errors import translated
from virt.storage import lookup_volume
from virt.xml.storage import VolumeXML

CHUNK = 1024 * 1024
# libvirt's RPC carries a stream in packets of at most 256 KiB; bigger sends are several times slower.
PACKET = 256 * 1024


class VolumeUpload:
    """Bytes written in order into one volume, from offset 0; the digest of what was sent (SHA-256
    unless checksum_algorithm names another of virt/checksums.py).
    finish() when every byte is in, abort() otherwise; both close the connection.

    The checksum is computed on a thread of its own while libvirt sends the same bytes: both
    release the GIL, so the two overlap instead of adding up."""

    def __init__(self, uri: str, pool_uuid: str, volume_name: str, length: int, *,
                 checksum_algorithm: str = "sha256") -> None:
        self.length = length
        self.sent = 0
        self.digest = new_hasher(checksum_algorithm)
        self.hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload-checksum")
        self.hashing = None
        self.conn = open_monitored(uri, on_close=lambda reason: None)  # a lost host fails the next send
        try:
            with translated():
                volume = lookup_volume(self.conn, pool_uuid, volume_name)
                self.stream = self.conn.newStream(0)
                volume.upload(self.stream, 0, length, 0)
        except BaseException:
            self._close()
            raise

    def write(self, data: bytes) -> int:
        """Send data; returns the bytes sent so far. More than the announced length is refused."""
        if self.sent + len(data) > self.length:
            raise ValueError(f"more bytes than announced ({self.length})")
        if self.hashing is not None:  # at most the previous chunk is still being hashed: memory stays bounded
            self.hashing.result()
        self.hashing = self.hasher.submit(self.digest.update, data)
        with translated():
            offset = 0
            while offset < len(data):  # the binding takes bytes only: a slice is a cheap copy
                offset += self.stream.send(data[offset:offset + PACKET])
        self.sent += len(data)
        return self.sent

    def finish(self) -> str:
        """Close the stream once every byte is in; returns the hex digest."""
        if self.sent != self.length:
            raise ValueError(f"only {self.sent} of {self.length} bytes were sent")
        try:
            with translated():
                self.stream.finish()
        finally:
            self._close()
        if self.hashing is not None:
            self.hashing.result()
        return self.digest.hexdigest()

    def abort(self) -> None:
        try:
            self.stream.abort()
        except libvirt.libvirtError:
            pass  # the stream is already broken: aborting it is all that was wanted
        finally:
            self._close()

    def _close(self) -> None:
        self.hasher.shutdown(wait=False)
        close_quietly(self.conn)


class VolumeDownload:
    """A volume's bytes from offset 0 to its end. length is known before the first byte, so that
    an HTTP response can announce it. Iterate once; close() aborts an unfinished transfer."""

    def __init__(self, uri: str, pool_uuid: str, volume_name: str) -> None:
        self.conn = open_monitored(uri, on_close=lambda reason: None)
        self.stream = None
        self.closed = False
        try:
            with translated():
                volume = lookup_volume(self.conn, pool_uuid, volume_name)
                xml = VolumeXML.from_libvirt(volume.XMLDesc(0))
                # A file's bytes (physical), or a device's (its capacity).
                self.length = xml.physical if xml.physical is not None else (xml.capacity or 0)
                self.stream = self.conn.newStream(0)
                volume.download(self.stream, 0, self.length, 0)
        except BaseException:
            close_quietly(self.conn)
            raise

    def chunks(self, *, batch: int = 4 * CHUNK) -> Iterator[bytes]:
        """The bytes, gathered into pieces of about `batch` bytes (libvirt sends 256 KiB packets)."""
        done = 0
        pending = bytearray()
        try:
            with translated():
                while done < self.length:
                    data = self.stream.recv(min(PACKET, self.length - done))
                    if not data:
                        break
                    done += len(data)
                    pending += data
                    if len(pending) >= batch:
                        yield bytes(pending)
                        pending.clear()
                if pending:
                    yield bytes(pending)
                if done != self.length:
                    raise OSError(f"the volume ended after {done} of {self.length} bytes")
                self.stream.finish()
                self.stream = None
        finally:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.stream is not None:
            try:
                self.stream.abort()
            except libvirt.libvirtError:
                pass
            self.stream = None
        close_quietly(self.conn)


def download_chunks(uri: str, pool_uuid: str, volume_name: str) -> Iterator[bytes]:
    """The volume's bytes, in pieces. Closing the generator early aborts the transfer."""
    yield from VolumeDownload(uri, pool_uuid, volume_name).chunks()
