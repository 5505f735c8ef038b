"""Console benchmark: time to the first frame through vmsite's console path, and the proxy's
throughput against a direct TCP connection to the same VNC server, side by side in one run.

* first_frame: from the POST for a token (over the web server, logged in) through the websocket to the
  console proxy (websockify with vmsite's plugins: Origin, GETDEL of the token, session check,
  libvirt lookup of the display) and the RFB handshake, to the first FramebufferUpdate of a
  scripted RFB client. Target p50 and p95 <= 1 s.
* throughput: full-screen Raw updates (non-incremental requests, so the server sends every pixel)
  read through the proxy and read straight from the VNC server's TCP port, taking turns.
  Target: proxy >= 70% of direct.

Run:  .venv/bin/python bench/console.py [--connections 30] [--updates 40]
Needs root and the main libvirtd; it runs one guest of its own (vmsite-con-bench-*) and removes it,
and uses Redis database 13.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import libvirt  # noqa: E402
import websocket  # noqa: E402

from bench.inventory import (  # noqa: E402
    asgi_server, django_env, emit, logged_in_session, percentile, progress, setup_django, superuser,
)
from tests.guests import small_guest_xml  # noqa: E402

BENCH = "console"
LOCAL = "qemu:///system"
FIRST_FRAME_TARGET_MS = 1000.0
THROUGHPUT_TARGET = 0.70


class RFBClient:
    """Just enough RFB 3.8 to reach framebuffer updates: no security, Raw encoding, 32 bpp."""

    def __init__(self, recv, send) -> None:
        self._recv, self._send, self._buffer = recv, send, bytearray()
        self.width = self.height = 0
        self.bytes_per_pixel = 4

    def exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self._recv()
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self._buffer.extend(chunk)
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def handshake(self) -> None:
        version = self.exact(12)
        if not version.startswith(b"RFB 003."):
            raise ConnectionError(f"not an RFB server: {version!r}")
        self._send(b"RFB 003.008\n")
        types = self.exact(self.exact(1)[0])
        if 1 not in types:
            raise ConnectionError(f"the server wants authentication ({list(types)})")
        self._send(b"\x01")
        if struct.unpack(">I", self.exact(4))[0] != 0:
            raise ConnectionError("security handshake failed")
        self._send(b"\x01")  # ClientInit: shared
        self.width, self.height = struct.unpack(">HH", self.exact(4))
        pixel_format = self.exact(16)
        self.bytes_per_pixel = pixel_format[0] // 8
        self.exact(struct.unpack(">I", self.exact(4))[0])  # the desktop name
        self._send(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: Raw only

    def request_full_update(self) -> None:
        self._send(struct.pack(">BBHHHH", 3, 0, 0, 0, self.width, self.height))

    def read_update(self) -> int:
        """Read one server message up to a whole FramebufferUpdate; the pixel bytes it carried."""
        while True:
            kind = self.exact(1)[0]
            if kind == 0:
                break
            if kind == 2:  # bell
                continue
            if kind == 3:  # cut text
                self.exact(3)
                self.exact(struct.unpack(">I", self.exact(4))[0])
                continue
            raise ConnectionError(f"unexpected RFB message {kind}")
        _pad, rectangles = struct.unpack(">BH", self.exact(3))
        pixels = 0
        for _ in range(rectangles):
            _x, _y, width, height, encoding = struct.unpack(">HHHHi", self.exact(12))
            if encoding == 0:
                pixels += width * height * self.bytes_per_pixel
                self.exact(width * height * self.bytes_per_pixel)
            elif encoding == -223:  # DesktopSize pseudo-encoding: no data
                self.width, self.height = width, height
            else:
                raise ConnectionError(f"unexpected encoding {encoding}")
        return pixels


def through_proxy(session, base_url: str, proxy_port: int, domain_pk: int) -> tuple[RFBClient, websocket.WebSocket]:
    response = session.post(f"{base_url}/vms/{domain_pk}/console/token/", timeout=30,
                            headers={"X-CSRFToken": session.cookies["csrftoken"]})
    response.raise_for_status()
    sock = websocket.create_connection(
        f"ws://127.0.0.1:{proxy_port}/?token={response.json()['token']}", timeout=30, origin=base_url,
        cookie=f"sessionid={session.cookies['sessionid']}", enable_multithread=False)
    return RFBClient(sock.recv, sock.send_binary), sock


def direct(port: int) -> tuple[RFBClient, socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return RFBClient(lambda: sock.recv(262144), sock.sendall), sock


def first_frame_ms(session, base_url: str, proxy_port: int, domain_pk: int) -> float:
    started = time.perf_counter()
    client, sock = through_proxy(session, base_url, proxy_port, domain_pk)
    try:
        client.handshake()
        client.request_full_update()
        client.read_update()
        return (time.perf_counter() - started) * 1000
    finally:
        sock.close()


def throughput(client: RFBClient, updates: int) -> float:
    """Megabytes per second of pixels over `updates` full-screen updates, one request at a time."""
    client.handshake()
    client.request_full_update()
    client.read_update()  # the first one also pays for the handshake: not counted
    started, total = time.perf_counter(), 0
    for _ in range(updates):
        client.request_full_update()
        total += client.read_update()
    return total / (time.perf_counter() - started) / 1e6


@contextmanager
def bench_guest() -> Iterator[libvirt.virDomain]:
    conn = libvirt.open(LOCAL)
    domain = conn.createXML(small_guest_xml(f"vmsite-con-bench-{uuid.uuid4().hex[:8]}"), 0)
    try:
        yield domain
    finally:
        try:
            domain.destroy()
        except libvirt.libvirtError:
            pass
        conn.close()


@contextmanager
def console_proxy(env: dict[str, str], log_dir: Path) -> Iterator[int]:
    import os

    from tests.stack import VENV_BIN, free_port, port_open, start_process

    port = free_port()
    argv = [str(VENV_BIN / "python"), "manage.py", "consoleproxy", "--host", "127.0.0.1", "--port", str(port)]
    proxy = start_process("consoleproxy", argv, log_dir=log_dir, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if proxy.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"console proxy did not start:\n{proxy.log()[-3000:]}")
            time.sleep(0.1)
        yield port
    finally:
        proxy.stop()


def vnc_port(guest: libvirt.virDomain) -> int:
    from virt.xml.domain import Domain as DomainXML

    return next(g.port for g in DomainXML.from_libvirt(guest.XMLDesc(0)).graphics if g.type == "vnc")


def figure(operation: str, samples: list[float], unit: str = "ms", **extra) -> dict:
    import statistics

    return {"bench": BENCH, "operation": operation, "samples": len(samples),
            f"p50_{unit}": round(statistics.median(samples), 2), f"p95_{unit}": round(percentile(samples, 0.95), 2),
            **extra}


def run(connections: int, updates: int, work_dir: Path) -> None:
    env = {**django_env(work_dir / "data"), "REDIS_URL": "redis://127.0.0.1:6379/13"}
    setup_django(env)
    from domains.models import Domain
    from inventory.reconcile import host_reconcile
    from hosts.services import host_register_local

    host, _ = host_register_local()
    with bench_guest() as guest, asgi_server(env, work_dir / "logs") as base_url, \
            console_proxy({**env, "SITE_ORIGINS": base_url}, work_dir / "logs") as proxy_port, superuser() as (username, password):
        host_reconcile(host=host, fresh=True)
        domain = Domain.objects.get(host=host, uuid=guest.UUIDString())
        session = logged_in_session(base_url, username, password)
        time.sleep(2)  # let SeaBIOS draw its screen
        first_frame_ms(session, base_url, proxy_port, domain.pk)  # warm-up
        frames = [first_frame_ms(session, base_url, proxy_port, domain.pk) for _ in range(connections)]
        emit(figure("first_frame", frames))
        proxied, straight = [], []
        for turn in range(6):  # taking turns: neither path always meets a cold or warm server
            order = ("proxy", "direct") if turn % 2 == 0 else ("direct", "proxy")
            for path in order:
                client, sock = (through_proxy(session, base_url, proxy_port, domain.pk) if path == "proxy"
                                else direct(vnc_port(guest)))
                try:
                    (proxied if path == "proxy" else straight).append(throughput(client, updates))
                finally:
                    sock.close()
        import statistics

        emit(figure("throughput_proxy", proxied, unit="MBps", screen=f"{client.width}x{client.height}"))
        emit(figure("throughput_direct", straight, unit="MBps"))
        ratio = statistics.median(proxied) / statistics.median(straight)
        emit({"bench": BENCH, "target": f"first_frame p95 <= {FIRST_FRAME_TARGET_MS:g} ms",
              "value": round(percentile(frames, 0.95), 2), "met": percentile(frames, 0.95) <= FIRST_FRAME_TARGET_MS})
        emit({"bench": BENCH, "target": f"proxy throughput >= {THROUGHPUT_TARGET:.0%} of direct",
              "value": round(ratio, 3), "met": ratio >= THROUGHPUT_TARGET})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=30)
    parser.add_argument("--updates", type=int, default=40)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    work_dir = Path(tempfile.mkdtemp(prefix="vmsite-bench-console-"))
    started = time.perf_counter()
    try:
        run(args.connections, args.updates, work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        progress(f"wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
