"""The VNC console proxy end to end: real libvirtd guest, real websockify process, real Redis, a
scripted RFB client. Every token rule of the consoles issue, each a test that can fail."""
import socket
import threading
import time

import pytest
import websocket

from consoles.tokens import KEY_PREFIX, hash_secret
from domains.services import domain_action_enqueue
from operations.models import Operation
from tests import stack
from tests.consoles.conftest import cached, guest_name, logged_in, take_console_right

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
LOCAL = "qemu:///system"


@pytest.fixture
def running(local_host, guests):
    guest = guests.define(LOCAL, name=guest_name(), start=True)
    return cached(local_host, guest)


def rfb_banner(sock: websocket.WebSocket) -> bytes:
    return sock.recv()


def refused(open_socket) -> int:
    with pytest.raises(websocket.WebSocketBadStatusException) as refusal:
        open_socket()
    return refusal.value.status_code


def test_it_proxies_the_vnc_server_of_the_vm_bound_to_the_token(console_proxy, running, alice):
    browser = logged_in(alice)
    sock = browser.open(console_proxy, browser.token(running))
    try:
        assert rfb_banner(sock).startswith(b"RFB 003.00")
    finally:
        sock.close()


def test_it_refuses_a_second_connection_with_the_same_token(console_proxy, running, alice):
    browser = logged_in(alice)
    token = browser.token(running)
    first = browser.open(console_proxy, token)
    first.close()
    assert refused(lambda: browser.open(console_proxy, token)) == 403


def test_it_refuses_a_token_once_its_time_to_live_is_over(console_proxy, running, alice, redis_ready, settings):
    browser = logged_in(alice)
    lasting = KEY_PREFIX + hash_secret(browser.token(running))
    assert 29_000 < redis_ready.pttl(lasting) <= 30_000  # CONSOLE_TOKEN_TTL: 30 s unless configured
    settings.CONSOLE_TOKEN_TTL = 1
    token = browser.token(running)
    key = KEY_PREFIX + hash_secret(token)
    assert 0 < redis_ready.pttl(key) <= 1_000
    stack.wait_until(lambda: not redis_ready.exists(key), timeout=10, message="the token to expire")
    assert refused(lambda: browser.open(console_proxy, token)) == 403


def test_it_refuses_a_token_presented_by_another_users_session(console_proxy, running, alice, bob):
    token = logged_in(alice).token(running)
    assert refused(lambda: logged_in(bob).open(console_proxy, token)) == 403
    # ... and a refused try spends the token: the owner cannot use it afterwards either.
    assert refused(lambda: logged_in(alice).open(console_proxy, token)) == 403


def test_it_refuses_a_token_with_no_session_cookie(console_proxy, running, alice):
    browser = logged_in(alice)
    token = browser.token(running)
    assert refused(lambda: browser.open(console_proxy, token, cookie="")) == 403


@pytest.mark.parametrize("origin", ["http://evil.example.org", "null", ""])
def test_it_refuses_a_foreign_or_missing_origin_without_spending_the_token(console_proxy, running, alice, origin):
    browser = logged_in(alice)
    token = browser.token(running)
    assert refused(lambda: browser.open(console_proxy, token, origin=origin)) == 403
    sock = browser.open(console_proxy, token)  # the page's own origin: the token still works
    sock.close()


def test_it_ignores_a_host_and_port_in_the_query_string(console_proxy, running, alice):
    decoy = socket.create_server(("127.0.0.1", 0))
    decoy.settimeout(3)
    visited = []
    threading.Thread(target=lambda: _accept_once(decoy, visited), daemon=True).start()
    browser = logged_in(alice)
    query = f"&host=127.0.0.1&port={decoy.getsockname()[1]}&target=127.0.0.1:{decoy.getsockname()[1]}"
    sock = browser.open(console_proxy, browser.token(running), query=query)
    try:
        assert rfb_banner(sock).startswith(b"RFB 003.00")  # the VM's VNC server, not the decoy
    finally:
        sock.close()
    time.sleep(1)
    assert visited == []
    decoy.close()


def _accept_once(server: socket.socket, visited: list) -> None:
    try:
        visited.append(server.accept())
    except OSError:
        pass


def test_redis_holds_no_raw_token_and_no_log_holds_any_token(console_proxy, running, alice, redis_ready,
                                                             stack_log_dir):
    browser = logged_in(alice)
    tokens = [browser.token(running) for _ in range(3)]
    assert all(len(token) >= 22 for token in tokens)  # 128 bits or more, URL-safe base64
    stored = {key: redis_ready.get(key) for key in redis_ready.scan_iter(f"{KEY_PREFIX}*")}
    assert len(stored) >= 3
    dump = b" ".join(key + b" " + (value or b"") for key, value in stored.items())
    for key in redis_ready.scan_iter("*"):
        dump += b" " + key
    assert not any(token.encode() in dump for token in tokens)
    ttls = [redis_ready.ttl(key) for key in stored]  # -2: gone since the scan (an earlier test's 1 s token)
    assert all(ttl == -2 or 0 < ttl <= 30 for ttl in ttls), ttls  # -1 would be a token kept for ever
    # Use them every way the proxy logs: a good one, a reused one, a refused origin.
    browser.open(console_proxy, tokens[0]).close()
    refused(lambda: browser.open(console_proxy, tokens[0]))
    refused(lambda: browser.open(console_proxy, tokens[1], origin="http://evil.example.org"))
    refused(lambda: browser.open(console_proxy, "not-a-token-" + tokens[2][:8]))
    time.sleep(1)
    logs = "".join(path.read_text(errors="replace") for path in stack_log_dir.glob("*.log"))
    assert "console of VM" in logs  # the proxy does log; just never a token
    assert not any(token in logs or token[:16] in logs for token in tokens)


def test_it_closes_an_open_console_when_the_vm_is_deleted(console_proxy, celery_worker, running, alice):
    browser = logged_in(alice)
    sock = browser.open(console_proxy, browser.token(running))
    rfb_banner(sock)
    started = time.monotonic()
    operation = domain_action_enqueue(domain=running, action="delete", user=alice)
    assert _closed_within(sock, 5), "the console stayed open"
    assert time.monotonic() - started <= 5
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=30, message="delete")
    assert Operation.objects.get(pk=operation.pk).message.startswith("Deleted")


def test_it_closes_an_open_console_when_the_user_loses_the_right(console_proxy, running, alice):
    browser = logged_in(alice)
    sock = browser.open(console_proxy, browser.token(running))
    rfb_banner(sock)
    sock.send_binary(b"RFB 003.008\n")  # keep the VNC server waiting on us, not closing
    take_console_right(alice)
    started = time.monotonic()
    code, reason = _close_frame(sock, 5)
    assert time.monotonic() - started <= 5
    assert code == 4403 and "no longer have the right" in reason


def test_it_closes_an_open_console_when_the_user_logs_out(console_proxy, running, alice):
    browser = logged_in(alice)
    sock = browser.open(console_proxy, browser.token(running))
    rfb_banner(sock)
    sock.send_binary(b"RFB 003.008\n")
    browser.client.logout()
    code, reason = _close_frame(sock, 5)
    assert code == 4403 and "logged out" in reason


def _closed_within(sock: websocket.WebSocket, seconds: float) -> bool:
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            frame = sock.recv_data_frame(True)[1]
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                return True
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        return True
    except websocket.WebSocketTimeoutException:
        return False
    return False


def _close_frame(sock: websocket.WebSocket, seconds: float) -> tuple[int, str]:
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = sock.recv_data_frame(True)[1]
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big"), frame.data[2:].decode()
    raise AssertionError("no close frame in time")


def test_the_proxy_serves_no_files_and_no_plain_http(console_proxy):
    import requests

    for path in ("/", "/manage.py", "/vmsite/settings.py", "/?token=x"):
        response = requests.get(f"http://127.0.0.1:{console_proxy}{path}", timeout=10)
        assert response.status_code == 405 and "SECRET_KEY" not in response.text
