"""One partial refresh: a live part of a page asks the page's URL for itself (header X-Live-Fragment:
<its id>, as static/vmsite/live.js does) and the server renders that part alone
(accounts/mixins.py, LiveFragments), after the same access check as the page, with only the
queries the part needs. Every page is found by walking the URL configuration, and every live part
by reading the pages, so a new live part that its view does not serve fails here."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from lxml import html

from accounts.mixins import FRAGMENT_HEADER
from accounts.models import Grant, Role
from tests.security.test_urlconf import all_routes, objects  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db]

HEADER = f"HTTP_{FRAGMENT_HEADER.upper().replace('-', '_')}"
CSRF = re.compile(r'(name="csrfmiddlewaretoken" value=")[^"]*"')


def live_parts(page: str) -> dict[str, str]:
    """id -> the element's HTML, for the page's live parts that its own URL serves."""
    tree = html.fromstring(page)
    return {element.get("id"): outer_html(element)
            for element in tree.xpath("//*[@data-live-topics][@id][not(@data-live-url)]")}


def outer_html(element) -> str:
    return CSRF.sub(r'\1"', html.tostring(element, encoding="unicode", with_tail=False)).strip()


def get(client, url: str, fragment: str | None = None):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **({HEADER: fragment} if fragment else {}))
    return response, len(queries)


def host_viewer(objects) -> Client:
    user = get_user_model().objects.create_user("viewer", password="x")
    Grant.objects.create(user=user, host=objects["host"], role=Role.VIEWER)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.integration  # some pages read Redis (whether a listener watches a host)
def test_every_live_part_of_every_page_is_served_alone_with_no_more_queries(objects, admin_client):
    served, fewer = set(), set()
    for client in (admin_client, host_viewer(objects)):
        for url in all_routes(objects):
            page, page_queries = get(client, url)
            if page.status_code != 200 or not page["Content-Type"].startswith("text/html"):
                continue
            for ident, element in live_parts(page.content.decode()).items():
                part, part_queries = get(client, url, ident)
                assert part.status_code == 200, f"{url} #{ident}: {part.status_code}"
                assert FRAGMENT_HEADER in part.get("Vary", ""), f"{url} #{ident}: caches must tell a part from its page"
                body = part.content.decode().strip()
                assert html.fromstring(body).get("id") == ident, f"{url} #{ident}: not the part alone"
                assert outer_html(html.fromstring(body)) == element, f"{url} #{ident}: the part differs from the page's"
                assert part_queries <= page_queries, f"{url} #{ident}: {part_queries} queries, the page {page_queries}"
                served.add(ident)
                if part_queries < page_queries:
                    fewer.add(ident)
    assert {"domain-live", "domain-page", "host-live", "host-page", "pool-live", "pool-page", "volume-page",
            "network-head", "network-page", "operation-result", "operation-facts", "domain-list-live",
            "host-list-live", "pool-list-live", "network-list-live", "operation-list-live", "dashboard-live",
            "discovery"} <= served
    # What a part does not show, it does not read: the lists' filters, a network's leases and VMs, the
    # host header's rights (for a viewer, whose rights are queries).
    assert {"domain-list-live", "pool-list-live", "network-list-live", "operation-list-live", "network-head",
            "host-page"} <= fewer


@pytest.mark.integration
def test_the_part_comes_from_its_own_template_and_not_from_the_page_cut_down(objects, admin_client):
    url = reverse("networking:detail", args=[objects["network"].pk])
    part, part_queries = get(admin_client, url, "network-head")
    page, page_queries = get(admin_client, url)
    assert [template.name for template in part.templates][0] == "networking/_network_head.html"
    assert "base.html" not in [template.name for template in part.templates]
    assert b"<nav" not in part.content and b"<nav" in page.content
    assert b'id="network-leases"' not in part.content and b'id="network-leases"' in page.content
    assert part_queries < page_queries


@pytest.mark.integration
def test_a_part_the_page_does_not_have_is_a_bad_request(objects, admin_client):
    response = admin_client.get(reverse("domains:detail", args=[objects["domain"].pk]), **{HEADER: "host-live"})
    assert response.status_code == 400


@pytest.mark.integration
def test_a_part_is_refused_as_its_page_would_be(objects):
    """Anonymous: the login page; no grant: not found; a viewer: the part, as the page."""
    domain, host = objects["domain"], objects["host"]
    url = reverse("domains:detail", args=[domain.pk])
    anonymous = Client().get(url, **{HEADER: "domain-live"})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    nobody, viewer = Client(), host_viewer(objects)
    nobody.force_login(get_user_model().objects.create_user("nobody", password="x"))
    for ident in ("domain-live", "domain-page"):
        assert nobody.get(url, **{HEADER: ident}).status_code == nobody.get(url).status_code == 404
        part = viewer.get(url, **{HEADER: ident})
        assert part.status_code == 200 and live_parts(viewer.get(url).content.decode())[ident] == outer_html(
            html.fromstring(part.content.decode().strip()))
    # A viewer's part shows no operator's buttons, as the page.
    assert b'data-action="start"' not in viewer.get(url, **{HEADER: "domain-live"}).content
    assert nobody.get(reverse("hosts:detail", args=[host.pk]), **{HEADER: "host-live"}).status_code == 404
