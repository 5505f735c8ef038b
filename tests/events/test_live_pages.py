"""Open pages follow what happens on a host, with no reload: Chromium, the ASGI server, the listener."""
import json
import re
import time

import pytest
from playwright.sync_api import expect

from domains.models import Domain
from hosts.models import Host
from hosts.services import host_register_local
from inventory.reconcile import host_reconcile
from tests import stack
from tests.conftest import virsh
from accounts.models import Grant, Role
from events.publish import flush
from events.watching import lease_key
from hosts.sync import host_mark_unreachable
from tests.events.live import explained, make_user, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def log_in(page, base_url: str) -> None:
    user = make_user("alice", superuser=True)
    user.set_password("a long enough password")
    user.save()
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "a long enough password")
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def mark_page(page) -> None:
    page.evaluate("window.__notReloaded = true")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"


def test_a_guest_started_with_virsh_turns_running_in_the_open_list_within_a_second(page, asgi_server, listener, guests):
    host, _ = host_register_local()
    guest = guests.define("qemu:///system")
    stack.wait_until(lambda: Domain.objects.filter(host=host, uuid=guest.UUIDString()).exists(), timeout=20,
                     message="the listener's first reconcile to list the guest")
    log_in(page, asgi_server)
    page.goto(f"{asgi_server}/vms/?q={guest.name()}")
    row = page.locator(f"tr[data-domain-uuid='{guest.UUIDString()}']")
    expect(row).to_contain_text("Shut off")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    mark_page(page)

    virsh("qemu:///system", "start", guest.name())
    started = time.monotonic()
    with explained(listener, host=host, uuid=guest.UUIDString()):
        expect(row).to_contain_text("Running", timeout=5_000)
    elapsed = time.monotonic() - started
    assert elapsed <= 1.0, f"the row turned running {elapsed:.2f} s after virsh returned"
    assert_not_reloaded(page)

    virsh("qemu:///system", "destroy", guest.name())
    expect(row).to_contain_text("Shut off", timeout=5_000)
    assert_not_reloaded(page)


@pytest.mark.parametrize("who", ["superuser", "operator of that vm alone"])
def test_an_open_vm_page_shows_a_change_that_a_reconcile_found_and_no_event_told(page, asgi_server, guests, who):
    """A VM stopped while no listener watched its host (the listener restarting, or connecting: its
    first reconcile finds the change, as the periodic one would). A reconcile tells open pages that the
    host's inventory changed, and the VM's page follows it as the VM list does. It did not: in whole
    runs the VM page of a guest forced off in the listener's first second showed Running for good."""
    host, _ = host_register_local()
    guest = guests.define("qemu:///system", start=True)
    host_reconcile(host=host)
    domain = Domain.objects.get(host=host, uuid=guest.UUIDString())
    if who == "superuser":
        log_in(page, asgi_server)
    else:  # a grant on one VM: the host's inventory message reaches it too, and says nothing more
        user = make_user("one-vm")
        Grant.objects.create(user=user, domain=domain, role=Role.OPERATOR)
        page.context.add_cookies([{"name": "sessionid", "value": session_cookie(user),
                                   "url": asgi_server}])
    page.goto(f"{asgi_server}/vms/{domain.pk}/")
    expect(page.locator("#domain-state")).to_have_text("Running")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    mark_page(page)

    guest.destroy()  # no listener runs here: no event reaches vmsite
    host_reconcile(host=Host.objects.get(pk=host.pk))
    assert Domain.objects.get(pk=domain.pk).get_state_display() == "Shut off"
    expect(page.locator("#domain-state")).to_have_text("Shut off", timeout=5_000)
    assert_not_reloaded(page)


def test_the_vm_page_shows_progress_and_the_result_and_says_when_the_vm_is_gone(page, asgi_server, listener,
                                                                                celery_worker, guests):
    host, _ = host_register_local()
    guest = guests.define("qemu:///system")
    stack.wait_until(lambda: Domain.objects.filter(host=host, uuid=guest.UUIDString()).exists(), timeout=20,
                     message="the listener's first reconcile to list the guest")
    domain = Domain.objects.get(host=host, uuid=guest.UUIDString())
    log_in(page, asgi_server)
    page.goto(f"{asgi_server}/vms/{domain.pk}/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    page.click("button[data-action=start]")
    expect(page.locator("#domain-state")).to_have_text("Running", timeout=15_000)
    expect(page.locator(".operation-status [data-operation-state]").first).to_have_text("Succeeded")
    mark_page(page)

    virsh("qemu:///system", "destroy", guest.name())
    virsh("qemu:///system", "undefine", guest.name())
    expect(page.locator("#live-gone")).to_be_visible(timeout=5_000)
    # Its tombstone's words (issue 16, bug 3): what happened, and the way back to the list.
    expect(page.locator("#live-gone")).to_contain_text(f"The VM {guest.name()} is gone from {host.name}")
    expect(page.locator("#live-gone #back-to-list")).to_have_attribute("href", "/vms/")
    assert_not_reloaded(page)
    assert page.request.get(f"{asgi_server}/vms/{domain.pk}/").status == 410


def test_a_new_guest_appears_and_a_removed_one_vanishes_from_the_host_page(page, asgi_server, listener, guests):
    host, _ = host_register_local()
    log_in(page, asgi_server)
    page.goto(f"{asgi_server}/hosts/{host.pk}/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    # the listener just started: a guest defined before it watches the host reaches the page only
    # with a later reconcile (in a clean-clone run, after the 5 s below)
    expect(page.locator("#host-live .not-watched")).to_have_count(0, timeout=15_000)
    mark_page(page)
    guest = guests.define("qemu:///system")
    row = page.locator(f"tr[data-domain-uuid='{guest.UUIDString()}']")
    expect(row).to_be_visible(timeout=5_000)
    virsh("qemu:///system", "undefine", guest.name())
    expect(row).to_have_count(0, timeout=5_000)
    assert_not_reloaded(page)


def test_the_vm_page_draws_graphs_that_grow_while_it_is_open(page, asgi_server, listener, guests):
    host, _ = host_register_local()
    guest = guests.define("qemu:///system", start=True)
    stack.wait_until(lambda: Domain.objects.filter(host=host, uuid=guest.UUIDString()).exists(), timeout=20,
                     message="the listener's first reconcile to list the guest")
    domain = Domain.objects.get(host=host, uuid=guest.UUIDString())
    log_in(page, asgi_server)
    page.goto(f"{asgi_server}/vms/{domain.pk}/")
    mark_page(page)
    expect(page.locator("#graphs canvas")).to_have_count(5)  # CPU, memory, disk, IOPS, network
    graphs = page.locator("#graphs")
    stack.wait_until(lambda: int(graphs.get_attribute("data-points") or 0) >= 1, timeout=15,
                     message="a first point")
    first = int(graphs.get_attribute("data-points"))
    stack.wait_until(lambda: int(graphs.get_attribute("data-points")) >= first + 2, timeout=15,
                     message="new points without a reload")
    assert_not_reloaded(page)
    page.goto(f"{asgi_server}/hosts/{host.pk}/")
    expect(page.locator("#graphs canvas")).to_have_count(4)
    stack.wait_until(lambda: int(page.locator("#graphs").get_attribute("data-points") or 0) >= 1, timeout=15,
                     message="the host's points")


def test_the_operation_page_fills_in_started_and_finished_without_a_reload(page, asgi_server):
    from operations.models import Operation
    from operations.services import operation_claim, operation_succeed
    from events.publish import flush

    host, _ = host_register_local()
    operation = Operation.objects.create(kind="host.sync", target_type="host", target_id=host.pk,
                                         target_label=host.name, host=host)
    log_in(page, asgi_server)
    page.goto(f"{asgi_server}/operations/{operation.pk}/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    mark_page(page)
    facts = page.locator("#operation-facts")
    expect(facts.locator("dt:has-text('Finished') + dd")).to_have_text("—")

    assert operation_claim(operation_id=operation.pk, worker="test@here")
    assert operation_succeed(operation_id=operation.pk, message="Synced")
    flush()
    finished = Operation.objects.get(pk=operation.pk).finished_at
    expect(facts.locator("dt:has-text('Finished') + dd")).to_contain_text(finished.strftime("%Y-%m-%d"), timeout=5_000)
    expect(facts.locator("dt:has-text('Worker') + dd")).to_have_text("test@here")
    expect(page.locator(f"#operation-{operation.pk}")).to_contain_text("Synced")
    assert_not_reloaded(page)


def test_the_not_watched_badge_goes_when_a_listener_takes_the_host(page, asgi_server, stack_log_dir):
    from inventory.reconcile import host_reconcile

    host, _ = host_register_local()
    host_reconcile(host=host, fresh=True)  # online and in step: the listener's own reconcile changes nothing
    log_in(page, asgi_server)
    page.goto(f"{asgi_server}/hosts/{host.pk}/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    expect(page.locator("#host-live .not-watched")).to_have_count(1)
    mark_page(page)
    listener = stack.start_process("listener", [str(stack.VENV_BIN / "python"), "manage.py", "listen"],
                                   log_dir=stack_log_dir, env=stack.stack_env())
    try:
        expect(page.locator("#host-live .not-watched")).to_have_count(0, timeout=15_000)
        assert_not_reloaded(page)
    finally:
        listener.stop()
    expect(page.locator("#host-live .not-watched")).to_have_count(1, timeout=15_000)  # it let go on its way out


def open_live_page(page, url: str, *, part: str) -> None:
    """Open a page and wait until its socket is live and its refresh on connect has fetched `part`;
    then window.__refreshed lists the parts refreshed from here on (the 'live:refreshed' events)."""
    page.add_init_script("document.addEventListener('live:refreshed', function (event) {"
                         " (window.__refreshed = window.__refreshed || []).push(event.detail.id); });")
    page.goto(url)
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    stack.wait_until(lambda: part in page.evaluate("window.__refreshed || []"), timeout=5,
                     message="the refresh on connect")
    page.evaluate("window.__refreshed = []")


def open_network_page(page, asgi_server, name: str, subnet: int):
    """Log in and open the live page of a new network (10.251.<subnet>.0/24, with the static-lease
    form), once its refresh on connect is over; returns the network's row."""
    import uuid

    from django.utils import timezone

    from networking.models import VirtualNetwork

    host, _ = host_register_local()
    network = VirtualNetwork.objects.create(
        host=host, uuid=uuid.uuid4(), name=name, active=True, mode="isolated", synced_at=timezone.now(),
        details={"ips": [{"family": "ipv4", "address": f"10.251.{subnet}.1", "prefix": 24, "ranges": [],
                          "hosts": []}]})
    log_in(page, asgi_server)
    open_live_page(page, f"{asgi_server}/networks/{network.pk}/", part="network-page")
    return network


def test_a_page_part_follows_the_operations_it_shows_when_they_finish(page, asgi_server):
    """The volume's page has no live topic of its own: its body refreshes when an operation shown on
    the page finishes (the "operation-finished" topic of static/vmsite/live.js), through the same
    one-part refresh as every live part, without a reload."""
    from django.utils import timezone

    from events.publish import flush
    from operations.models import Operation
    from operations.services import operation_claim, operation_succeed
    from storage.models import StoragePool, Volume

    host, _ = host_register_local()
    now = timezone.now()
    pool = StoragePool.objects.create(host=host, uuid="6695eb01-f6a4-8304-79aa-97f2502e19a0", name="live-pool",
                                      pool_type="dir", active=True, synced_at=now)
    volume = Volume.objects.create(host=host, pool=pool, key="/live-pool/v.img", name="v.img", synced_at=now)
    operation = Operation.objects.create(kind="volume.checksum", target_type="volume", target_id=volume.pk,
                                         target_label=volume.name, host=host)
    log_in(page, asgi_server)
    # The socket's first refresh of every part (on connect) is over before the volume changes.
    open_live_page(page, f"{asgi_server}/storage/volumes/{volume.pk}/", part="volume-page")
    mark_page(page)
    expect(page.locator("#volume-sha256")).to_have_text("—")

    Volume.objects.filter(pk=volume.pk).update(sha256="ab" * 32)  # what the checksum found; no message
    assert operation_claim(operation_id=operation.pk, worker="test@here")
    assert operation_succeed(operation_id=operation.pk, message="Checksummed")
    flush()
    expect(page.locator("#volume-sha256")).to_have_text("ab" * 32, timeout=5_000)
    assert page.evaluate("window.__refreshed").count("volume-page") == 1
    assert_not_reloaded(page)


def test_what_the_user_typed_in_a_live_part_survives_its_refresh(page, asgi_server):
    """A form inside a live part (the network page's static-lease form) keeps what the user typed, and
    the focus, when the part refreshes under it (a message, the socket's refresh on connect)."""
    from networking.models import VirtualNetwork

    network = open_network_page(page, asgi_server, "live-typing", 41)
    page.fill("#lease-form #id_mac", "52:54:00:fb:41:01")
    page.fill("#lease-form #id_ip", "10.251.41.20")
    VirtualNetwork.objects.filter(pk=network.pk).update(bridge="virbr41")  # the part's next copy differs
    page.evaluate("window.vmsiteLive.refresh('network-page')")
    expect(page.locator("#network-facts")).to_contain_text("virbr41")
    expect(page.locator("#lease-form #id_mac")).to_have_value("52:54:00:fb:41:01")
    expect(page.locator("#lease-form #id_ip")).to_have_value("10.251.41.20")
    assert page.evaluate("document.activeElement.id") == "id_ip"


def test_a_part_whose_copy_did_not_change_stays_in_place(page, asgi_server):
    """A refresh that brings the copy the server sent last leaves the part's elements in place (a
    click on a button of it is not lost to a swap between press and release); a changed copy goes in.
    The part holds a form: its CSRF token, masked anew in each rendering, is no change."""
    from networking.models import VirtualNetwork

    page.add_init_script("document.addEventListener('live:refreshed', function (event) {"
                         " (window.__changed = window.__changed || []).push(event.detail.changed); });")
    network = open_network_page(page, asgi_server, "live-unchanged", 42)
    assert page.locator("#lease-form input[name=csrfmiddlewaretoken]").count() == 1
    page.evaluate("window.__changed = []; document.getElementById('network-page').__old = true")

    page.evaluate("window.vmsiteLive.refresh('network-page')")
    stack.wait_until(lambda: page.evaluate("window.__changed"), timeout=5, message="the part refreshed")
    assert page.evaluate("window.__changed") == [False]
    assert page.evaluate("document.getElementById('network-page').__old === true")

    VirtualNetwork.objects.filter(pk=network.pk).update(bridge="virbr42")
    page.evaluate("window.vmsiteLive.refresh('network-page')")
    expect(page.locator("#network-facts")).to_contain_text("virbr42")
    assert page.evaluate("window.__changed") == [False, True]
    assert page.evaluate("document.getElementById('network-page').__old === undefined")


def test_a_part_is_not_replaced_under_a_held_pointer_so_its_click_goes_through(page, asgi_server):
    """A part whose changed copy arrives while a pointer is held down on a button of it waits for the
    release: the click lands on the button that was pressed, and the new copy goes in after."""
    from networking.models import VirtualNetwork

    network = open_network_page(page, asgi_server, "live-pressed", 43)
    button = page.locator("#lease-form button[type=submit]")
    box = button.bounding_box()
    button.evaluate("b => { b.type = 'button'; b.addEventListener('click', () => { window.__clicked = true; }); }")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()

    VirtualNetwork.objects.filter(pk=network.pk).update(bridge="virbr43")
    fetched = "performance.getEntriesByType('resource').filter(e => e.name.includes('/networks/')).length"
    before = page.evaluate(fetched)
    page.evaluate("window.vmsiteLive.refresh('network-page')")
    stack.wait_until(lambda: page.evaluate(fetched) > before, timeout=5, message="the part's copy to arrive")
    expect(page.locator("#network-facts")).not_to_contain_text("virbr43")  # held back while pressed

    page.mouse.up()
    assert page.evaluate("window.__clicked === true"), "the click was lost"
    expect(page.locator("#network-facts")).to_contain_text("virbr43")


def test_a_page_counts_itself_live_and_catches_up_only_once_the_server_says_hello(page, asgi_server, redis_ready):
    """The server accepts the live socket first and joins it to the messages after (events/consumers.py),
    then says hello: a change between the two reaches no socket. Here the socket's messages are held
    in the browser's route until the hello, and the host's message dropped, as if the host went offline
    in that gap: the page must not say "Live" before the hello, and must show the change after it."""
    alpha = Host.objects.create(name="alpha", transport="tcp", address="127.0.0.253", status="online")
    redis_ready.set(lease_key(alpha.pk), "test-listener", px=120_000)  # watched: not on the attention list
    held: list[str] = []
    to_page = []  # the route's page side, once the page opened its socket

    def hold_messages(socket) -> None:
        server = socket.connect_to_server()
        socket.on_message(server.send)
        server.on_message(lambda message: socket.send(message) if len(to_page) > 1 else held.append(message))
        to_page.append(socket)

    page.route_web_socket(re.compile(r"/ws/live/$"), hold_messages)
    log_in(page, asgi_server)
    stack.wait_until(lambda: page.wait_for_timeout(50) or held, timeout=15, message="the server's hello")
    assert json.loads(held[0]) == {"type": "hello"}
    assert page.locator("#live-indicator").get_attribute("data-state") != "live"  # open, not yet joined
    expect(page.locator("#attention")).not_to_contain_text("alpha")

    host_mark_unreachable(host=alpha, reason="Connection refused")
    flush()
    stack.wait_until(lambda: page.wait_for_timeout(50) or len(held) > 1, timeout=15, message="the host's message")
    socket = to_page[0]
    to_page.append(socket)  # from now on the server's messages pass; the host's held one is dropped
    socket.send(held[0])
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    expect(page.locator("#attention > li").first).to_contain_text("Offline: Connection refused")
    expect(page.locator("#attention > li").first).to_contain_text("alpha")
    redis_ready.delete(lease_key(alpha.pk))
