"""The permission matrix for the websocket routes: each route × anonymous, a user with no grant, an
operator of another host, a viewer, an operator (grants on the VM's host) and an administrator. A refused socket is refused at
the handshake; nothing a viewer can open lets them change anything (the live socket only listens)."""
from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from operations.models import Operation
from tests.security.test_permissions import make_user
from tests.security.test_urlconf import objects  # noqa: F401  (fixture)
from tests.stack import in_own_loop
from vmsite.asgi import application
from vmsite.routing import websocket_urlpatterns

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]  # every route × every role
ROLES = ("anonymous", "nobody", "stranger", "viewer", "operator", "admin")
# Who gets through each route's handshake (everyone logged in may listen to what they may see).
ALLOWED = {
    "ws/live/": {"nobody", "stranger", "viewer", "operator", "admin"},
    "ws/vms/<int:pk>/serial/": {"operator", "admin"},
    "ws/vms/<int:pk>/screenshots/": {"operator", "admin"},
    "ws/storage/uploads/<int:operation_id>/": {"admin"},
}


def session_cookies(objects) -> dict[str, str]:
    cookies = {"anonymous": ""}
    for role in ROLES[1:]:
        user = make_user(role, objects, f"ws-{role}")
        client = Client()
        client.force_login(user)
        cookies[role] = f"sessionid={client.session.session_key}"
        # Each role's own pending upload: only an administrator's may be sent.
        cookies[f"{role}-upload"] = str(Operation.objects.create(
            kind="volume.upload", target_type="storagepool", target_id=objects["pool"].pk, target_label="walked",
            host=objects["host"], user=user, arguments={"pool_id": objects["pool"].pk, "volume_id": None,
                                                        "name": f"{role}.img", "size": 1, "new": True}).pk)
    return cookies


async def handshake(path: str, cookie: str) -> bool:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _code = await communicator.connect(timeout=10)
    await communicator.disconnect()
    return connected


def test_every_socket_route_lets_in_exactly_the_declared_roles(objects):  # noqa: F811
    routes = {str(pattern.pattern) for pattern in websocket_urlpatterns}
    assert routes == set(ALLOWED), "a new websocket route: say in ALLOWED who may open it"
    cookies = session_cookies(objects)
    for route, allowed in ALLOWED.items():
        for role in ROLES:
            path = "/" + route.replace("<int:pk>", str(objects["domain"].pk)).replace(
                "<int:operation_id>", cookies.get(f"{role}-upload", cookies["admin-upload"]))
            got = in_own_loop(handshake(path, cookies[role]))
            assert got == (role in allowed), f"{path} as {role}: {'let in' if got else 'refused'}"


async def handshake_from(path: str, cookie: str, origin: bytes, host: bytes = b"127.0.0.1:8000",
                         scheme: str = "ws") -> bool:
    headers = [(b"origin", origin), (b"host", host), (b"cookie", cookie.encode())]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    communicator.scope["scheme"] = scheme
    connected, _code = await communicator.connect(timeout=10)
    await communicator.disconnect()
    return connected


def test_every_socket_route_takes_only_the_pages_whole_origin(objects, settings):  # noqa: F811
    """Even an administrator's socket: a page on another port or scheme of the same host is refused."""
    settings.SITE_ORIGINS, settings.CSRF_TRUSTED_ORIGINS = [], []  # the request's own origin only
    cookies = session_cookies(objects)
    for route in ALLOWED:
        path = "/" + route.replace("<int:pk>", str(objects["domain"].pk)).replace(
            "<int:operation_id>", cookies["admin-upload"])
        assert in_own_loop(handshake_from(path, cookies["admin"], b"http://127.0.0.1:8000")), path
        for origin in (b"http://127.0.0.1:8001", b"https://127.0.0.1:8000", b"http://127.0.0.1", b"null"):
            assert not in_own_loop(handshake_from(path, cookies["admin"], origin)), f"{path} from {origin!r}"
        # A server on another port (not a listed origin): its own pages, over its own scheme only.
        own = (b"http://127.0.0.1:9000", b"127.0.0.1:9000")
        if "uploads" not in route:  # an upload's socket opens once: it did above
            assert in_own_loop(handshake_from(path, cookies["admin"], *own))
        assert not in_own_loop(handshake_from(path, cookies["admin"], *own, scheme="wss"))
        assert not in_own_loop(handshake_from(path, cookies["admin"], b"http://127.0.0.1:9001", b"127.0.0.1:9000"))
