"""The graphs as Chromium draws them: a sane time axis with one sample, tick labels that differ."""
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from domains.models import Domain
from hosts.services import host_register_local
from metrics.models import Sample
from tests import stack
from tests.events.test_live_pages import log_in

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def chart(page, chart_id: str, expression: str):
    return page.eval_on_selector(f"#graphs [data-chart='{chart_id}']", f"cell => {expression}")


def points_drawn(page, count: int) -> None:
    stack.wait_until(lambda: page.locator("#graphs").get_attribute("data-points") == str(count), timeout=15,
                     message=f"{count} points on the graphs")


def test_it_draws_one_sample_on_a_time_axis_of_a_minute_not_years(page, asgi_server):
    host, _ = host_register_local()
    at = timezone.now() - timedelta(seconds=10)
    Sample.objects.create(host=host, domain=None, at=at, cpu_percent=12.0, memory_kib=1 << 20)
    log_in(page, asgi_server)
    page.goto(f"{asgi_server}/hosts/{host.pk}/")
    points_drawn(page, 1)
    for chart_id in ("cpu", "memory", "disk", "net"):
        low, high = chart(page, chart_id, "[cell.uplot.scales.x.min, cell.uplot.scales.x.max]")
        assert low <= at.timestamp() <= high and high - low <= 120, (chart_id, low, high)
        labels = chart(page, chart_id, "cell.uplot.axes[0]._values")
        assert not any(str(year) in label for label in labels for year in range(2027, 2031)), labels
        assert labels and all(re.fullmatch(r"\d\d:\d\d(:\d\d)?", label) for label in labels), labels  # one line each


def test_it_labels_small_steps_with_the_decimals_they_need(page, asgi_server):
    host, _ = host_register_local()
    domain = Domain.objects.create(host=host, uuid="0b4e28ba-2fa1-41d2-883f-0016d3cca4aa", name="graph-iops",
                                   synced_at=timezone.now())
    start = timezone.now() - timedelta(minutes=5)
    Sample.objects.bulk_create(
        Sample(host=host, domain=domain, at=start + timedelta(seconds=5 * index), cpu_percent=0.1 * (index % 3),
               memory_kib=50 * 1024 + 256 * (index % 3), disk_read_iops=0.1 * (index % 5), disk_write_iops=0.05 * (index % 7))
        for index in range(30))
    log_in(page, asgi_server)
    page.goto(f"{asgi_server}/vms/{domain.pk}/")
    expect(page.locator("#graphs canvas")).to_have_count(5)
    points_drawn(page, 30)
    for chart_id in ("iops", "cpu", "memory"):  # memory: 50, 50.25 and 50.5 MiB do not all read "50 MiB"
        labels = chart(page, chart_id, "cell.uplot.axes[1]._values")
        assert len(labels) >= 3 and len(set(labels)) == len(labels), (chart_id, labels)


def test_a_graph_request_that_fails_on_the_network_leaves_no_page_error(page, asgi_server):
    """A fetch cut off (the server away, the page being left) is not an uncaught error: the next sample asks again."""
    host, _ = host_register_local()
    domain = Domain.objects.create(host=host, uuid="0b4e28ba-2fa1-41d2-883f-0016d3cca4ab", name="graph-cut",
                                   synced_at=timezone.now())
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, asgi_server)
    series = reverse("metrics:domain_series", args=[domain.pk])
    asked: list[str] = []
    page.route(f"**{series}*", lambda route: (asked.append(route.request.url), route.abort("failed")))
    page.goto(f"{asgi_server}/vms/{domain.pk}/")
    stack.wait_until(lambda: asked, timeout=10, message="the graphs asking for their series")
    page.wait_for_timeout(300)
    assert errors == []
