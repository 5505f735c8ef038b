"""An open VM page follows its VM to another host (issue 16, bug 3), in Chromium against the live
stack (ASGI server, worker, two harness hosts): the same URL, the new host shown in place without a
reload, the graphs asking the right host's series, no request answered 4xx or 5xx on the way."""
import pytest
from django.urls import reverse
from playwright.sync_api import expect

from domains.models import Domain
from tests.domains.test_migration import cached, define_guest, follow_to, registered, two_hosts  # noqa: F401
from tests.events.test_live_pages import log_in

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_open_vm_page_follows_its_vm_to_the_new_host(page, asgi_server, registered, two_hosts, guests):
    source_host, destination_host = registered
    source, destination = two_hosts
    guest = define_guest(guests, source)
    follow_to(guests, destination, guest)
    domain = cached(source_host, guest)
    failed: list[str] = []
    page.on("response", lambda response: failed.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    page.on("pageerror", lambda error: failed.append(f"page error: {error}"))
    log_in(page, asgi_server)

    detail = f"{asgi_server}{reverse('domains:detail', args=[domain.pk])}"
    page.goto(f"{asgi_server}{reverse('domains:migrate', args=[domain.pk])}")
    page.select_option("#id_destination", str(destination_host.pk))
    page.click("#confirm-migrate")
    expect(page).to_have_url(detail)
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    page.evaluate("window.__notReloaded = true")
    host_link = page.locator(f"#domain-live a[href='{reverse('hosts:detail', args=[destination_host.pk])}']")
    expect(host_link).to_have_text(destination_host.name, timeout=60_000)
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    assert Domain.objects.get(pk=domain.pk).host == destination_host  # the same row, the same URL

    series = page.request.get(f"{asgi_server}{reverse('metrics:domain_series', args=[domain.pk])}").json()
    assert series["host"] == destination_host.pk
    assert not failed, failed
