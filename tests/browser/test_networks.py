"""In Chromium against the live ASGI server: the Networks link, a refused subnet, a network made
and opened, a static lease added live."""
import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from hosts.services import host_register_local
from tests.networking.helpers import NetworkCleanup, unique_name, virsh

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def cleanup():
    networks = NetworkCleanup()
    yield networks
    networks.remove_all()


def test_it_creates_a_network_from_the_nav_and_adds_a_static_lease(page, asgi_server, celery_worker, cleanup):
    get_user_model().objects.create_superuser("alice", password=PASSWORD)
    host, _ = host_register_local()
    name = cleanup.add(unique_name("ui-"))
    page.goto(f"{asgi_server}/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    page.get_by_role("link", name="Networks", exact=True).click()
    expect(page.get_by_role("heading", name="Virtual networks")).to_be_visible()
    page.get_by_role("link", name="New network").click()
    page.select_option("#id_host", str(host.pk))
    page.fill("#id_name", name)
    page.select_option("#id_mode", "isolated")
    page.fill("#id_ipv4_subnet", "10.251.41.0/33")
    page.click("#network-form button[type=submit]")
    expect(page.locator("#row-ipv4_subnet .invalid-feedback")).to_contain_text("not a valid IPv4 subnet")
    expect(page.locator("#id_name")).to_have_value(name)  # nothing typed is lost

    page.fill("#id_ipv4_subnet", "10.251.41.0/24")
    page.fill("#id_ipv4_dhcp_start", "10.251.41.100")
    page.fill("#id_ipv4_dhcp_end", "10.251.41.150")
    page.click("#network-form button[type=submit]")
    expect(page.locator("#result-link")).to_be_visible(timeout=30_000)
    page.click("#result-link")
    expect(page.locator("#network-facts")).to_contain_text("10.251.41.1/24")
    expect(page.locator("#network-state")).to_contain_text("active")

    page.fill("#lease-form #id_mac", "52:54:00:fb:41:01")
    page.fill("#lease-form #id_ip", "10.251.41.20")
    page.click("#lease-form button[type=submit]")
    expect(page.locator("#network-static-leases")).to_contain_text("10.251.41.20", timeout=30_000)
    assert "52:54:00:fb:41:01" in virsh("net-dumpxml", name)

    page.click("#network-actions [data-action=stop]")
    expect(page.locator("#network-state")).to_contain_text("inactive", timeout=30_000)
    expect(page.locator("#network-actions [data-action=start]")).to_be_visible()
    assert "Active:         no" in virsh("net-info", name)
