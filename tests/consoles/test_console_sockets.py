"""The serial console and screenshot sockets on the ASGI server refuse what the issue says they
must: no session, no console right, a foreign or missing Origin. With all three, they work."""
import json

import libvirt
import pytest
import websocket

from tests.consoles.conftest import cached, guest_name, logged_in, make_user, serial_guest_xml

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
LOCAL = "qemu:///system"


@pytest.fixture
def serial_guest(local_host, guests):
    name = guest_name()
    guest = libvirt.open(LOCAL).defineXML(serial_guest_xml(name))
    guests.created.append((LOCAL, name))
    guests.uuids.append((LOCAL, guest.UUIDString()))
    guest.create()
    return cached(local_host, guest)


def open_socket(asgi_server: str, path: str, *, cookie: str = "", origin: str | None = None) -> websocket.WebSocket:
    return websocket.create_connection(asgi_server.replace("http", "ws") + path, timeout=15, cookie=cookie,
                                       origin=origin if origin is not None else asgi_server,
                                       suppress_origin=origin == "")


@pytest.mark.parametrize("kind", ["serial", "screenshots"])
def test_the_sockets_refuse_no_session_no_right_and_foreign_origins(asgi_server, serial_guest, alice, kind):
    path = f"/ws/vms/{serial_guest.pk}/{kind}/"
    allowed = f"sessionid={logged_in(alice).session_key}"
    no_right = f"sessionid={logged_in(make_user('frank', console=False)).session_key}"
    for cookie, origin in (("", None), (no_right, None), (allowed, "http://evil.example.org"), (allowed, "")):
        with pytest.raises(websocket.WebSocketBadStatusException):
            open_socket(asgi_server, path, cookie=cookie, origin=origin).recv()
    sock = open_socket(asgi_server, path, cookie=allowed)
    sock.close()


def test_the_serial_socket_carries_the_console_both_ways(asgi_server, serial_guest, alice):
    sock = open_socket(asgi_server, f"/ws/vms/{serial_guest.pk}/serial/",
                       cookie=f"sessionid={logged_in(alice).session_key}")
    try:
        assert json.loads(sock.recv())["state"] == "connected"
        reach_the_boot_menu(sock)
    finally:
        sock.close()


def reach_the_boot_menu(sock: websocket.WebSocket) -> None:
    """Both ways through a serial socket: Esc until SeaBIOS shows its boot menu (the guest's output)."""
    sock.send("\x1b")  # Esc: SeaBIOS's boot menu, whenever it gets to ask
    seen = b""
    while b"Select boot device" not in seen:
        frame = sock.recv()
        seen += frame if isinstance(frame, bytes) else b""
        if b"Press ESC" in seen:
            sock.send("\x1b")


def test_the_screenshot_socket_sends_png_images(asgi_server, serial_guest, alice):
    sock = open_socket(asgi_server, f"/ws/vms/{serial_guest.pk}/screenshots/",
                       cookie=f"sessionid={logged_in(alice).session_key}")
    try:
        image = sock.recv()
        assert isinstance(image, bytes) and image.startswith(b"\x89PNG")
    finally:
        sock.close()


def test_screenshots_stop_when_nobody_looks(asgi_server, serial_guest, alice, redis_ready):
    import time

    from django.conf import settings

    key = f"vmsite:screenshot:{serial_guest.pk}"
    sock = open_socket(asgi_server, f"/ws/vms/{serial_guest.pk}/screenshots/",
                       cookie=f"sessionid={logged_in(alice).session_key}")
    assert sock.recv().startswith(b"\x89PNG")
    assert redis_ready.exists(key)  # shared, for SCREENSHOT_INTERVAL seconds, with other viewers
    sock.close()
    time.sleep(settings.SCREENSHOT_INTERVAL + 2)
    assert not redis_ready.exists(key)  # expired, and nobody asked the host again


def test_a_socket_outlives_the_channel_layers_idle_reads(asgi_server, serial_guest, alice):
    """channels_redis waits 5 s per read of an idle channel; with redis-py's default socket timeout
    (also 5 s) that read timed out and killed the consumer. Three screenshots 5 s apart need it alive."""
    sock = open_socket(asgi_server, f"/ws/vms/{serial_guest.pk}/screenshots/",
                       cookie=f"sessionid={logged_in(alice).session_key}")
    try:
        images = [sock.recv() for _ in range(4)]
        assert all(isinstance(image, bytes) and image.startswith(b"\x89PNG") for image in images)
    finally:
        sock.close()
