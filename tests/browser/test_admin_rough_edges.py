"""In Chromium against the live ASGI server (issue 16): the host page's failed-connect banner goes away
live once the host is online; copy buttons; folded operation boxes stay open across live refreshes."""
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect

from domains.models import Domain
from events.publish import publish_domain, publish_host
from hosts.models import Host
from hosts.services import host_register_local, host_sync_enqueue, installation_ssh_key
from hosts.sync import host_mark_unreachable
from operations.choices import OperationState
from hosts.ssh import fingerprint_of_blob
from operations.models import Operation

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def logged_in(page, asgi_server):
    get_user_model().objects.create_superuser("alice", password=PASSWORD)
    page.goto(f"{asgi_server}/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    return page


def failed(kind: str, target, host: Host, error: str) -> Operation:
    return Operation.objects.create(kind=kind, target_type=target._meta.model_name, target_id=target.pk,
                                    target_label=str(target), host=host, state=OperationState.FAILED, error=error,
                                    progress=100, finished_at=timezone.now())


def test_the_failed_connect_banner_goes_away_live_once_the_host_is_online(logged_in, asgi_server, celery_worker):
    page = logged_in
    host, _ = host_register_local()
    reason = "refused: qemu:///system: Failed to connect socket (a test's outage)"
    host_mark_unreachable(host=host, reason=reason)
    connect = failed("host.connect", host, host, reason)
    page.goto(f"{asgi_server}/hosts/{host.pk}/")
    expect(page.locator("#host-status-reason")).to_contain_text("a test's outage")
    expect(page.locator(f"#operation-{connect.pk}")).to_contain_text("a test's outage")

    host_sync_enqueue(host=host, user=None)  # the host answers again (no click, no reload on this page)
    expect(page.locator("#host-status")).to_have_text("Online", timeout=30_000)
    expect(page.locator("#host-status-reason")).to_have_count(0)
    expect(page.locator(f"#operation-{connect.pk}")).to_have_count(0)
    history = page.locator("h2:has-text('Recent operations') + div table")
    expect(history).to_contain_text("host.connect")  # still in the history


def test_the_copy_buttons_copy_the_public_key(logged_in, asgi_server):
    page = logged_in
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=asgi_server)
    page.goto(f"{asgi_server}/hosts/add/")
    page.click("#copy-public-key")
    expect(page.locator("#copy-public-key")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == installation_ssh_key().public_key


def test_the_pinned_fingerprint_has_a_copy_button_that_survives_a_live_refresh(logged_in, asgi_server):
    page = logged_in
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=asgi_server)
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    host = Host.objects.create(name="pinned", transport="ssh", address="127.0.0.201", username="root",
                               ssh_host_keys=f"127.0.0.201 {key}\n")
    page.goto(f"{asgi_server}/hosts/{host.pk}/")
    page.wait_for_timeout(500)  # the live socket is connected
    Host.objects.filter(pk=host.pk).update(status_reason="refused: a test")
    publish_host(host_id=host.pk)
    expect(page.locator("#host-status-reason")).to_contain_text("refused: a test")  # the region was replaced
    page.click("[data-copy='#pinned-key-1']")
    expect(page.locator("[data-copy='#pinned-key-1']")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == f"ssh-ed25519 {fingerprint_of_blob(key.split()[1])}"


def test_folded_operations_stay_open_across_a_live_refresh(logged_in, asgi_server):
    page = logged_in
    host = Host.objects.create(name=f"ops-{uuid.uuid4().hex[:6]}", transport="test", address="default")
    domain = Domain.objects.create(host=host, uuid=uuid.uuid4(), name="busy-vm", synced_at=timezone.now())
    boxes = [failed("domain.set_metadata", domain, host, f"failure {n}") for n in range(5)]
    page.goto(f"{asgi_server}/vms/{domain.pk}/")
    expect(page.locator("#operations-folded summary")).to_have_text("2 more finished operations")
    expect(page.locator(f"#operation-{boxes[0].pk}")).not_to_be_visible()  # the oldest, folded
    page.click("#operations-folded summary")
    expect(page.locator(f"#operation-{boxes[0].pk}")).to_be_visible()

    Domain.objects.filter(pk=domain.pk).update(name="renamed-vm")
    page.wait_for_timeout(500)  # the live socket is connected (its hello came before the page settled)
    publish_domain(domain_id=domain.pk, host_id=host.pk, seq=1, state=None, change="renamed")
    expect(page.get_by_role("heading", name="renamed-vm")).to_be_visible()  # the region was refreshed
    expect(page.locator(f"#operation-{boxes[0].pk}")).to_be_visible()  # and the disclosure stayed open
    page.click("#operations-folded summary")
    expect(page.locator(f"#operation-{boxes[0].pk}")).not_to_be_visible()  # collapsible again


def test_add_disk_makes_a_new_volume_from_the_vms_page(logged_in, asgi_server, celery_worker, guests, scratch_pool):
    from inventory.reconcile import host_reconcile
    from tests.domains.helpers import cached
    from tests.domains.test_config import define_guest

    page = logged_in
    host, _ = host_register_local()
    guest = define_guest(guests)
    host_reconcile(host=host)
    domain = cached(host, guest)
    page.goto(f"{asgi_server}/vms/{domain.pk}/")
    page.click("[data-action=attach_disk]")
    expect(page.locator("#row-volume")).to_be_visible()
    expect(page.locator("#row-new_name")).to_be_hidden()  # until "a new volume" is chosen
    page.check("#id_source_new")
    expect(page.locator("#row-volume")).to_be_hidden()
    page.select_option("#id_pool", scratch_pool.name)
    page.fill("#id_new_name", "from-page.qcow2")
    page.fill("#id_new_size_0", "0")
    page.select_option("#id_new_size_1", "MiB")
    page.uncheck("#id_live")
    page.click("#config-form button[type=submit]")
    expect(page.locator("#row-new_size .invalid-feedback")).to_have_text("A new volume needs at least 1 MiB.")
    expect(page.locator("#row-new_name")).to_be_visible()  # the choice and what was typed are kept
    expect(page.locator("#id_new_name")).to_have_value("from-page.qcow2")
    page.fill("#id_new_size_0", "64")
    page.click("#config-form button[type=submit]")
    expect(page.locator(".operation-status [data-operation-state]").first).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator("#domain-disks")).to_contain_text("from-page.qcow2")
    assert "from-page.qcow2" in scratch_pool.pool.listVolumes()
