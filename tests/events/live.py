"""Helpers for tests of the live path: a logged-in session cookie and a socket to /ws/live/."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import websocket
from django.contrib.auth import get_user_model
from django.test import Client


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def make_user(username: str, *, superuser: bool = False, perms: tuple[str, ...] = ()):
    model = get_user_model()
    if superuser:
        return model.objects.create_superuser(username, password="x")
    user = model.objects.create_user(username, password="x")
    from django.contrib.auth.models import Permission

    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def open_socket(base_url: str, *, cookie: str | None, origin: str | None = "default",
                sockopt: tuple = ()) -> websocket.WebSocket:
    """Connect as a browser would; raises websocket.WebSocketBadStatusException when refused.
    sockopt: options of the TCP socket, set before it connects."""
    ws_url = base_url.replace("http://", "ws://") + "/ws/live/"
    headers = []
    if cookie:
        headers.append(f"Cookie: sessionid={cookie}")
    options = {"suppress_origin": True} if origin is None else {"origin": base_url if origin == "default" else origin}
    # websocket-client checks a text frame's UTF-8 in pure Python (0.25 s per MiB here, seconds per MiB
    # under the suite's load: a 6 MiB test timed out on it); recv() still decodes it strictly, in C.
    sock = websocket.create_connection(ws_url, header=headers, timeout=10, sockopt=sockopt,
                                       skip_utf8_validation=True, **options)
    hello = json.loads(sock.recv())
    assert hello == {"type": "hello"}
    return sock


def receive_until(sock: websocket.WebSocket, predicate, *, timeout: float) -> list[dict]:
    """Every message received until one satisfies predicate (returned last); fails on timeout."""
    received: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            message = json.loads(sock.recv())
        except websocket.WebSocketTimeoutException:
            break
        received.append(message)
        if predicate(message):
            return received
    raise AssertionError(f"no matching message within {timeout} s; received: {received[-20:]}")


def receive_all(sock: websocket.WebSocket, *, seconds: float) -> list[dict]:
    received: list[dict] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            received.append(json.loads(sock.recv()))
        except websocket.WebSocketTimeoutException:
            break
    return received


@contextmanager
def explained(listener, **vm) -> Iterator[None]:
    """A wait for a page to follow a VM's change that fails says what the VM's row and the listener
    had then (vm: the row's lookup, e.g. pk=...): a page, a listener or a row at fault."""
    from domains.models import Domain

    try:
        yield
    except AssertionError as failure:
        row = Domain.objects.filter(**vm).values_list("state", "synced_at", "seq").first()
        raise AssertionError(f"{failure}\nthe VM's row (state, synced_at, seq): {row}\n"
                             f"the listener's log:\n{listener.log()[-4000:]}") from None
