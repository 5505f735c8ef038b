"""The live socket over the real ASGI server and Redis channel layer: who may open one, and what
it receives (the listener's events, the operations' progress)."""
import pytest
import websocket

from domains.models import Domain
from events.publish import flush, publish_domain
from hosts.models import Host
from hosts.services import host_register_local, host_sync_enqueue
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


def test_a_user_who_may_not_see_hosts_gets_no_socket_and_a_viewer_gets_their_messages(asgi_server):
    host = Host.objects.create(name="watched", transport="test")
    assert refused(asgi_server, cookie=session_cookie(make_user("nobody"))) == 403
    viewer = open_socket(asgi_server, cookie=session_cookie(make_user("viewer", perms=("hosts.view_host",))))
    publish_domain(domain_id=999, host_id=host.pk, seq=7, state=1, change="changed")
    flush()
    message = receive_until(viewer, lambda m: m.get("type") == "domain", timeout=5)[-1]
    assert message == {"type": "domain", "id": 999, "seq": 7, "state": 1, "change": "changed", "host": host.pk}
    viewer.close()


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
    # The listener's reconcile on connect lists the guest first.
    receive_until(sock, lambda m: m.get("type") == "inventory" and m["host"] == host.pk, timeout=20)
    domain = Domain.objects.get(host=host, uuid=guest.UUIDString())
    receive_all(sock, seconds=0.5)

    virsh("qemu:///system", "start", guest.name())
    message = receive_until(sock, lambda m: m.get("type") == "domain" and m["id"] == domain.pk, timeout=5)[-1]
    assert message["state"] == 1 and message["change"] == "changed"
    domain.refresh_from_db()
    assert domain.state == 1 and domain.seq == message["seq"]

    virsh("qemu:///system", "destroy", guest.name())
    message = receive_until(sock, lambda m: m.get("type") == "domain" and m["id"] == domain.pk, timeout=5)[-1]
    assert message["state"] == 5 and message["seq"] > domain.seq
    sock.close()
