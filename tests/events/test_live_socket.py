"""The live socket over the real ASGI server and Redis pub/sub: who may open one, and what it
receives (the listener's events, the operations' progress)."""
import json
import os

import pytest
import websocket
from django.utils import timezone

from accounts.models import Grant, Role
from domains.models import Domain
from events.publish import flush, publish_domain, publish_host, publish_inventory
from hosts.models import Host
from hosts.services import host_register_local, host_sync_enqueue
from tests import stack
from vmsite.settings_test import WORKER_NUMBER
from tests.conftest import virsh
from tests.events.live import make_user, open_socket, receive_all, receive_until, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def refused(base_url: str, **kwargs) -> int:
    with pytest.raises(websocket.WebSocketBadStatusException) as refusal:
        open_socket(base_url, **kwargs)
    return refusal.value.status_code


def test_a_socket_without_a_session_is_refused(asgi_server):
    assert refused(asgi_server, cookie=None) == 403
    assert refused(asgi_server, cookie="not-a-session") == 403


def test_a_socket_with_a_foreign_or_missing_origin_is_refused(asgi_server):
    cookie = session_cookie(make_user("root", superuser=True))
    assert refused(asgi_server, cookie=cookie, origin="http://evil.example") == 403
    assert refused(asgi_server, cookie=cookie, origin="http://127.0.0.1.evil.example:8000") == 403
    assert refused(asgi_server, cookie=cookie, origin=None) == 403
    open_socket(asgi_server, cookie=cookie).close()  # the same session from the page's own origin


def test_a_socket_receives_only_messages_about_what_its_user_may_see(asgi_server):
    seen = Host.objects.create(name="granted", transport="test", address="default")
    unseen = Host.objects.create(name="not-granted", transport="test", address="default")
    viewer = make_user("viewer")
    Grant.objects.create(user=viewer, host=seen, role=Role.VIEWER)
    one_vm = make_user("one-vm")
    vm = Domain.objects.create(host=unseen, uuid="0e6f5d8a-1111-4222-8333-444455556666", name="granted-vm",
                               synced_at=timezone.now())
    other_vm = Domain.objects.create(host=unseen, uuid="0e6f5d8a-1111-4222-8333-444455556667", name="other-vm",
                                     synced_at=timezone.now())
    Grant.objects.create(user=one_vm, domain=vm, role=Role.OPERATOR)
    sockets = {name: open_socket(asgi_server, cookie=session_cookie(user))
               for name, user in (("viewer", viewer), ("one_vm", one_vm), ("nobody", make_user("nobody")))}

    publish_domain(domain_id=other_vm.pk, host_id=unseen.pk, seq=1, state=1, change="changed")
    publish_domain(domain_id=vm.pk, host_id=unseen.pk, seq=1, state=1, change="changed")
    publish_domain(domain_id=999, host_id=seen.pk, seq=7, state=1, change="changed")
    flush()
    received = {name: [m for m in receive_all(sock, seconds=1.5) if m.get("type") == "domain"]
                for name, sock in sockets.items()}
    assert [(m["host"], m["id"]) for m in received["viewer"]] == [(seen.pk, 999)]
    assert [(m["host"], m["id"]) for m in received["one_vm"]] == [(unseen.pk, vm.pk)]
    assert received["nobody"] == []
    # "this host's inventory changed" says nothing more: a grant on one VM of the host receives it
    # (that VM's page re-reads itself), no grant does not.
    publish_inventory(host_id=unseen.pk)
    flush()
    assert receive_until(sockets["one_vm"], lambda m: m.get("type") == "inventory", timeout=5)[-1]["host"] == unseen.pk
    assert [m for m in receive_all(sockets["nobody"], seconds=0.5) if m.get("type") == "inventory"] == []

    Grant.objects.create(user=viewer, host=unseen, role=Role.VIEWER)
    publish_host(host_id=unseen.pk)  # what a grant change sends (accounts.services): sockets re-read
    flush()
    receive_until(sockets["viewer"], lambda m: m.get("type") == "host", timeout=5)
    publish_domain(domain_id=other_vm.pk, host_id=unseen.pk, seq=2, state=5, change="changed")
    flush()
    assert receive_until(sockets["viewer"], lambda m: m.get("type") == "domain", timeout=5)[-1]["id"] == other_vm.pk
    for sock in sockets.values():
        sock.close()


def test_operation_progress_and_result_reach_the_socket_in_order(asgi_server, celery_worker):
    host, _ = host_register_local()
    sock = open_socket(asgi_server, cookie=session_cookie(make_user("root", superuser=True)))
    operation = host_sync_enqueue(host=host, user=None)
    messages = receive_until(sock, lambda m: m.get("type") == "operation" and m["id"] == operation.pk
                             and m["state"] == "succeeded", timeout=30)
    mine = [m for m in messages if m.get("type") == "operation" and m["id"] == operation.pk]
    # Sent by two processes (this one queued it, the worker ran it), so they may cross on the way:
    # the sequence numbers put them in order, each once, and a page that sees a gap refetches.
    by_seq = sorted(mine, key=lambda m: m["seq"])
    assert len({m["seq"] for m in mine}) == len(mine)
    states = [m["state"] for m in by_seq]
    assert states[0] == "pending" and "running" in states and states[-1] == "succeeded"
    assert states.index("running") < states.index("succeeded")
    assert all(m["host"] == host.pk and m["target"] == f"host:{host.pk}" for m in mine)
    sock.close()


def test_a_guest_started_with_virsh_reaches_the_database_and_the_socket(asgi_server, listener, guests):
    host, _ = host_register_local()
    guest = guests.define("qemu:///system")
    sock = open_socket(asgi_server, cookie=session_cookie(make_user("root", superuser=True)))
    # The listener's reconcile on connect lists the guest, or (when that reconcile listed the host's guests
    # just before the define) the define event adds it right after.
    receive_until(sock, lambda m: m.get("type") == "inventory" and m["host"] == host.pk, timeout=20)
    stack.wait_until(lambda: Domain.objects.filter(host=host, uuid=guest.UUIDString()).exists(), timeout=10,
                     message="the guest defined with virsh in the database")
    domain = Domain.objects.get(host=host, uuid=guest.UUIDString())
    receive_all(sock, seconds=0.5)

    def about_the_guest(message: dict) -> bool:
        return message.get("type") == "domain" and message["id"] == domain.pk

    virsh("qemu:///system", "start", guest.name())
    # A start brings more than one event (started, resumed) and, during the listener's first
    # reconcile, one more read: each read sends a message; the first says "running".
    message = receive_until(sock, about_the_guest, timeout=5)[-1]
    assert message["state"] == 1 and message["change"] == "changed"
    domain.refresh_from_db()
    assert domain.state == 1 and domain.seq >= message["seq"]

    virsh("qemu:///system", "destroy", guest.name())
    # QEMU's own "shutdown" on libvirt's SIGTERM can come first: a read then says 4 (shutting down).
    message = receive_until(sock, lambda m: about_the_guest(m) and m["state"] == 5, timeout=5)[-1]
    domain.refresh_from_db()
    assert domain.state == 5 and domain.seq >= message["seq"]
    sock.close()


def test_it_stops_messages_about_a_host_as_soon_as_its_grant_is_removed(asgi_server):
    from accounts.services import grant_remove, grant_set

    kept = Host.objects.create(name="kept-grant", transport="test", address="default")
    lost = Host.objects.create(name="lost-grant", transport="test", address="default")
    viewer = make_user("loses-a-grant")
    grant_set(request=None, user=viewer, host=kept, domain=None, role=Role.VIEWER)
    grant = grant_set(request=None, user=viewer, host=lost, domain=None, role=Role.VIEWER)
    sock = open_socket(asgi_server, cookie=session_cookie(viewer))
    publish_domain(domain_id=11, host_id=lost.pk, seq=1, state=1, change="changed")
    flush()
    receive_until(sock, lambda m: m.get("type") == "domain" and m["id"] == 11, timeout=5)

    grant_remove(request=None, grant=grant)
    # Sent at once, without waiting for the socket to hear of the grant: the re-read of what the
    # user may see comes before any later message.
    publish_domain(domain_id=11, host_id=lost.pk, seq=2, state=3, change="changed")
    publish_domain(domain_id=12, host_id=kept.pk, seq=1, state=1, change="changed")
    flush()
    received = receive_until(sock, lambda m: m.get("type") == "domain" and m["id"] == 12, timeout=5)
    assert [m for m in received if m.get("host") == lost.pk and m["type"] == "domain"] == []
    sock.close()


def test_it_receives_each_message_once_per_process_whatever_the_number_of_sockets(asgi_server):
    import redis
    from django.conf import settings

    host = Host.objects.create(name="many-sockets", transport="test", address="default")
    cookie = session_cookie(make_user("many-pages", superuser=True))
    sockets = [open_socket(asgi_server, cookie=cookie) for _ in range(20)]
    client = redis.Redis.from_url(settings.REDIS_URL)
    # One subscription for the web process, not one per socket (nor per host group).
    assert dict(client.pubsub_numsub(settings.LIVE_CHANNEL)) == {settings.LIVE_CHANNEL.encode(): 1}
    publish_domain(domain_id=21, host_id=host.pk, seq=1, state=1, change="changed")
    flush()
    for sock in sockets:
        receive_until(sock, lambda m: m.get("type") == "domain" and m["id"] == 21, timeout=5)
    publish_domain(domain_id=22, host_id=host.pk, seq=1, state=1, change="changed")
    flush()
    for sock in sockets:
        received = receive_until(sock, lambda m: m.get("type") == "domain" and m["id"] == 22, timeout=5)
        assert [m["id"] for m in received if m.get("type") == "domain"] == [22]  # 21 came once, not again
        sock.close()


def test_a_client_that_stops_reading_holds_up_no_other_socket(asgi_server):
    """A page whose client stops reading (a tiny receive buffer, never read) fills its connection's
    buffers and the server's send to it waits; the process's other sockets still get every message."""
    import socket

    import redis
    from django.conf import settings

    cookie = session_cookie(make_user("slow-and-quick", superuser=True))
    stuck = open_socket(asgi_server, cookie=cookie, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    quick = open_socket(asgi_server, cookie=cookie)
    client = redis.Redis.from_url(settings.REDIS_URL)
    padding = "x" * 65536
    # 6 MiB: more than the stuck connection's buffers hold (the server's socket grows to 4 MiB here,
    # tcp_wmem), less than Redis lets a subscriber fall behind (8 MiB, client-output-buffer-limit).
    for number in range(96):
        client.publish(settings.LIVE_CHANNEL, json.dumps({"type": "metrics", "id": number, "padding": padding}))
    received = receive_until(quick, lambda m: m.get("type") == "metrics" and m["id"] == 95, timeout=10)
    assert [m["id"] for m in received if m.get("type") == "metrics"] == list(range(96))
    stuck.close()
    quick.close()


def own_redis(port: int, log_dir) -> stack.StackProcess:
    server = stack.start_process(f"redis-{port}", ["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                                                   "--save", "", "--appendonly", "no"], log_dir=log_dir,
                                 env=dict(os.environ))
    stack.wait_until(lambda: stack.port_open("127.0.0.1", port), timeout=15, message="redis-server listening")
    return server


def closed_by_server(sock: websocket.WebSocket, *, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while True:
            opcode, _frame = sock.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return True
    except (websocket.WebSocketConnectionClosedException, ConnectionResetError, BrokenPipeError):
        return True  # closed, or reset before our echo of its close frame got out
    except websocket.WebSocketTimeoutException:
        return False


def test_it_closes_its_sockets_when_redis_goes_away_and_takes_new_ones_once_it_is_back(stack_log_dir):
    redis_port, web_port = stack.free_port(), stack.free_port()
    redis_server = own_redis(redis_port, stack_log_dir)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    # The test settings take the suite's Redis as the base (VMSITE_SUITE_REDIS_URL) and give each
    # xdist worker its own database on it: this web server's base is the test's own redis-server.
    live_channel = f"vmsite.live.{WORKER_NUMBER}"
    server = stack.start_process(f"asgi-{web_port}", stack.asgi_argv(web_port), log_dir=stack_log_dir,
                                 env=stack.stack_env(REDIS_URL=redis_url, VMSITE_SUITE_REDIS_URL=redis_url))
    try:
        stack.wait_until(lambda: stack.port_open("127.0.0.1", web_port), timeout=30, message="the web server listening")
        base_url = f"http://127.0.0.1:{web_port}"
        cookie = session_cookie(make_user("through-an-outage", superuser=True))
        sock = open_socket(base_url, cookie=cookie)

        redis_server.stop()
        # Messages sent meanwhile are lost: the page must reconnect, which refreshes what it shows.
        assert closed_by_server(sock, timeout=15)

        redis_server = own_redis(redis_port, stack_log_dir)
        sock = open_socket(base_url, cookie=cookie)  # waits for the process to subscribe again
        import redis as redis_client

        redis_client.Redis.from_url(redis_url).publish(live_channel, json.dumps(
            {"type": "domain", "id": 31, "seq": 1, "state": 1, "change": "changed", "host": None}))
        assert receive_until(sock, lambda m: m.get("type") == "domain", timeout=5)[-1]["id"] == 31
        sock.close()
    finally:
        server.stop()
        redis_server.stop()
