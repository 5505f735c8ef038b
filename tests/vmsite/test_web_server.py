"""The web server as the Procfile starts it (uvicorn, vmsite/web_server.py), on what vmsite needs of
it beyond pages and sockets (which the rest of the suite runs through it): no websocket compression,
keepalive pings, a large request body, and a clean stop on SIGTERM with sockets open."""
from __future__ import annotations

import http.client
import json
import os
import signal
import time

import pytest
import websocket

from tests import stack
from tests.events.live import make_user, open_socket, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def own_server(redis_ready, tmp_path):
    """A web server of the test's own, which the test may stop."""
    port = stack.free_port()
    server = stack.start_process(f"web-{port}", stack.asgi_argv(port), log_dir=tmp_path, env=stack.stack_env())
    try:
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), timeout=30, message="the web server listening")
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def close_code(sock: websocket.WebSocket, *, timeout: float) -> int | None:
    """The code of the close frame the server sends within timeout (None: none came)."""
    sock.settimeout(timeout)
    try:
        while True:
            frame = sock.recv_frame()
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(frame.data[:2], "big")
    except (websocket.WebSocketTimeoutException, websocket.WebSocketConnectionClosedException, OSError):
        return None


def test_it_closes_open_sockets_with_1012_on_sigterm_and_exits_cleanly(own_server):
    server, base_url = own_server
    sockets = [open_socket(base_url, cookie=session_cookie(make_user(f"open-{index}"))) for index in range(3)]

    os.killpg(server.pid, signal.SIGTERM)

    assert [close_code(sock, timeout=10) for sock in sockets] == [1012] * 3  # "service restart": pages reconnect
    # After its shutdown uvicorn raises the signal it caught again, so that systemd sees a SIGTERM
    # exit (which it counts as clean) rather than a status.
    assert server.process.wait(timeout=15) == -signal.SIGTERM
    log = server.log()
    assert "Shutting down" in log and "Finished server process" in log, log[-3000:]
    # No lifespan complaint at start (--lifespan off), no traceback at the end.
    assert "Traceback" not in log and "ERROR" not in log and "lifespan" not in log.lower(), log[-3000:]


def test_it_never_compresses_websocket_messages(asgi_server):
    # Chromium offers permessage-deflate on every socket; uploads are 4 MiB of incompressible bytes.
    cookie = session_cookie(make_user("deflate", superuser=True))
    sock = websocket.create_connection(
        asgi_server.replace("http://", "ws://") + "/ws/live/", origin=asgi_server, timeout=10,
        header=[f"Cookie: sessionid={cookie}",
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"])
    try:
        assert json.loads(sock.recv()) == {"type": "hello"}
        assert "sec-websocket-extensions" not in {name.lower() for name in sock.getheaders()}
    finally:
        sock.close()


def test_it_pings_an_idle_socket_and_keeps_it_while_the_client_answers(asgi_server):
    sock = open_socket(asgi_server, cookie=session_cookie(make_user("idle", superuser=True)))
    started = time.monotonic()
    sock.settimeout(30)
    try:
        opcode, _frame = sock.recv_data_frame(True)  # websocket-client answers the ping, as a browser does
        assert opcode == websocket.ABNF.OPCODE_PING and time.monotonic() - started < 25
        sock.send(json.dumps({"type": "ping"}))
        assert json.loads(sock.recv()) == {"type": "pong"}
    finally:
        sock.close()


def test_it_answers_a_large_request_body_and_goes_on_serving(asgi_server):
    host, port = asgi_server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    body = os.urandom(32 * 1024 * 1024)  # twice what nginx lets through (deploy/nginx/vmsite.conf)
    try:
        conn.request("POST", "/login/", body=body, headers={"Content-Type": "application/octet-stream"})
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 403  # no CSRF token: refused once the body is in, not a reset or a 500
    finally:
        conn.close()
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", "/login/")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
