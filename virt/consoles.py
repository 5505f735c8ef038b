"""Consoles of one domain: where its graphical console listens, its serial console as a libvirt
stream, and screenshots. Used by the console proxy and the console consumers, never by page views."""
from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from virt.domains import is_running, lookup
from virt.errors import OperationInvalid, translated
from virt.xml.domain import Domain as DomainXML

MAX_SCREENSHOT_BYTES = 32 * 1024 * 1024
WILDCARD_ADDRESSES = {"0.0.0.0", "::", ""}


@dataclass(frozen=True)
class GraphicsEndpoint:
    """Where a running domain's VNC or SPICE server listens, as the domain's host sees it."""

    type: str  # vnc or spice
    listen: str  # an address on the host; "" when the server listens on every address
    port: int

    @property
    def listens_everywhere(self) -> bool:
        return self.listen in WILDCARD_ADDRESSES


def graphics_endpoint(conn: libvirt.virConnect, uuid: str, graphics_type: str) -> GraphicsEndpoint:
    """The live endpoint of the domain's first display of that type; OperationInvalid when the
    domain is off or has none."""
    with translated():
        domain = lookup(conn, uuid)
        if not is_running(domain):
            raise OperationInvalid("The VM is off: start it to open its console.")
        document = DomainXML.from_libvirt(domain.XMLDesc(0))
    for graphics in document.graphics:
        if graphics.type == graphics_type and graphics.port and graphics.port > 0:
            return GraphicsEndpoint(type=graphics_type, listen=graphics.listen_address or "", port=graphics.port)
    raise OperationInvalid(f"The VM has no {graphics_type.upper()} display.")


class SerialConsole:
    """The domain's serial console as a non-blocking libvirt stream.

    `on_data(bytes)` and `on_closed(reason)` run on libvirt's event loop thread: they must only hand
    the data on (to a queue or another event loop), never block. `force` takes the console over
    from whoever holds it; without it, a held console fails with OperationInvalid.
    """

    def __init__(self, conn: libvirt.virConnect, uuid: str, *, on_data: Callable[[bytes], None],
                 on_closed: Callable[[str], None], force: bool = True) -> None:
        self._on_data = on_data
        self._on_closed = on_closed
        self._lock = threading.Lock()
        self._open = True
        with translated():
            domain = lookup(conn, uuid)
            if not is_running(domain):
                raise OperationInvalid("The VM is off: start it to use its serial console.")
            self._stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
            try:
                domain.openConsole(None, self._stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE if force else 0)
            except libvirt.libvirtError:
                self._stream.abort()
                raise
            self._stream.eventAddCallback(
                libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP,
                self._on_event, None)

    def _on_event(self, stream: libvirt.virStream, events: int, _opaque) -> None:
        if events & libvirt.VIR_STREAM_EVENT_READABLE:
            try:
                data = stream.recv(65536)
            except libvirt.libvirtError as exc:
                self._finish(f"the console stream failed: {exc.get_error_message()}")
                return
            if data == -2:  # nothing after all (EAGAIN)
                return
            if data:
                self._on_data(bytes(data))
                return
            self._finish("the console closed (the VM stopped, or another session took it over)")
            return
        if events & (libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP):
            self._finish("the console closed (the VM stopped, or another session took it over)")

    def _finish(self, reason: str) -> None:
        if self.close():
            self._on_closed(reason)

    def send(self, data: bytes) -> None:
        """Type into the console. Keystrokes are small: a full buffer (EAGAIN) drops them, as a
        serial line would, rather than blocking."""
        with self._lock:
            if not self._open:
                return
            try:
                self._stream.send(data)
            except libvirt.libvirtError as exc:
                raise OperationInvalid(f"The console refused input: {exc.get_error_message()}") from exc

    def close(self) -> bool:
        """Close the stream once; True for the call that closed it."""
        return self._stop(abort=True)

    def detach(self) -> None:
        """Stop reading without aborting: for a console another session is taking over. libvirt
        ends this stream itself for the new one, and an abort from here, arriving after the new
        stream opened, would end that one (the daemon tracks the console by device, not by stream)."""
        self._stop(abort=False)

    def _stop(self, *, abort: bool) -> bool:
        with self._lock:
            if not self._open:
                return False
            self._open = False
        steps = (self._stream.eventRemoveCallback, self._stream.abort) if abort else (self._stream.eventRemoveCallback,)
        for step in steps:
            try:
                step()
            except libvirt.libvirtError:
                pass
        return True


def screenshot_png(conn: libvirt.virConnect, uuid: str) -> bytes:
    """The first screen of a running domain as PNG (QEMU gives PNG or PPM; PPM is converted)."""
    with translated():
        domain = lookup(conn, uuid)
        if not is_running(domain):
            raise OperationInvalid("The VM is off.")
        stream = conn.newStream(0)
        try:
            mime = domain.screenshot(stream, 0, 0)
            data = _receive_all(stream)
            stream.finish()
        except libvirt.libvirtError:
            stream.abort()
            raise
    if mime == "image/png":
        return data
    if mime in ("image/x-portable-pixmap", "image/x-portable-anymap"):
        return ppm_to_png(data)
    raise OperationInvalid(f"The host sent a screenshot as {mime}, which vmsite cannot show.")


def _receive_all(stream: libvirt.virStream) -> bytes:
    data = bytearray()
    while True:
        chunk = stream.recv(262144)
        if not chunk:
            return bytes(data)
        data.extend(chunk)
        if len(data) > MAX_SCREENSHOT_BYTES:
            raise OperationInvalid("The screenshot is larger than vmsite accepts.")


def ppm_to_png(ppm: bytes) -> bytes:
    """A binary PPM (P6, 8 bits) as a PNG, uncompressed filter, zlib level 6."""
    fields, offset = [], 0
    while len(fields) < 4:
        while ppm[offset:offset + 1].isspace():
            offset += 1
        if ppm[offset:offset + 1] == b"#":
            offset = ppm.index(b"\n", offset) + 1
            continue
        end = offset
        while not ppm[end:end + 1].isspace():
            end += 1
        fields.append(ppm[offset:end])
        offset = end
    magic, width, height, maximum = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic != b"P6" or maximum != 255:
        raise OperationInvalid("The screenshot is in a PPM variant vmsite cannot read.")
    pixels = ppm[offset + 1:offset + 1 + width * height * 3]
    rows = b"".join(b"\x00" + pixels[row * width * 3:(row + 1) * width * 3] for row in range(height))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(rows, 6)) + _png_chunk(b"IEND", b""))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
