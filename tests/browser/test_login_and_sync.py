"""In Chromium against the live ASGI server: log in, see the dashboard, sync, see the guest."""
import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from hosts.services import host_register_local

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def operator_account():
    return get_user_model().objects.create_superuser("alice", password=PASSWORD)


def log_in(page, base_url: str, password: str) -> None:
    page.goto(f"{base_url}/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def test_it_logs_in_syncs_the_local_host_and_shows_the_guest(page, asgi_server, celery_worker, operator_account,
                                                             guests):
    guest = guests.define("qemu:///system", start=True)
    host, _ = host_register_local()
    log_in(page, asgi_server, PASSWORD)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    page.get_by_role("link", name=host.name).first.click()
    expect(page.locator("#host-domains")).not_to_contain_text(guest.name())
    page.click("#sync-button")
    expect(page.locator(".operation-status")).to_be_visible()
    expect(page.locator("#host-domains")).to_contain_text(guest.name(), timeout=20_000)
    expect(page.locator(f"tr[data-domain-uuid='{guest.UUIDString()}']")).to_contain_text("Running")
    expect(page.locator(".operation-status [data-operation-state]")).to_have_text("Succeeded")


def test_it_shows_an_error_and_opens_no_session_on_a_wrong_password(page, asgi_server, operator_account):
    log_in(page, asgi_server, "wrong password")
    expect(page.locator("#login-error")).to_contain_text("correct username and password")
    assert not [c for c in page.context.cookies() if c["name"] == "sessionid"]
    page.goto(f"{asgi_server}/vms/")
    expect(page).to_have_url(f"{asgi_server}/login/?next=/vms/")
