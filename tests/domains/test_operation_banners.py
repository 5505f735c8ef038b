"""Finished-operation boxes on a VM page (issue 16): the newest few in view, the rest folded under
"N more", unfinished ones always in view."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from lxml import html

from domains.models import Domain
from hosts.models import Host
from operations.choices import OperationState
from operations.models import Operation

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain() -> Domain:
    host = Host.objects.create(name=f"ops-{uuid.uuid4().hex[:6]}", transport="test", address="default")
    return Domain.objects.create(host=host, uuid=uuid.uuid4(), name="busy-vm", synced_at=timezone.now())


def operation(domain: Domain, state: str, seconds_ago: int) -> Operation:
    now = timezone.now()
    made = Operation.objects.create(kind="domain.set_metadata", target_type="domain", target_id=domain.pk,
                                    target_label=domain.name, host=domain.host, state=state)
    finished = None if state == OperationState.RUNNING else now - timedelta(seconds=seconds_ago - 1)
    Operation.objects.filter(pk=made.pk).update(created_at=now - timedelta(seconds=seconds_ago), finished_at=finished)
    return made


def boxes(page, path: str) -> list[str]:
    return [box.get("id") for box in page.xpath(path)]


def test_it_keeps_the_newest_three_finished_in_view_and_folds_the_rest(domain, admin_client):
    finished = [operation(domain, OperationState.SUCCEEDED if n % 2 else OperationState.FAILED, 10 + n)
                for n in range(5)]  # finished[0] is the newest
    running = operation(domain, OperationState.RUNNING, 30)  # older than all of them, and still in view
    old = operation(domain, OperationState.SUCCEEDED, 600)  # finished long ago: not shown at all
    page = html.fromstring(admin_client.get(reverse("domains:detail", args=[domain.pk])).content)
    in_view = boxes(page, "//div[@id='domain-live']/div[contains(@class, 'operation-status')]")
    folded = boxes(page, "//details[@id='operations-folded']/div[contains(@class, 'operation-status')]")
    assert in_view == [f"operation-{op.pk}" for op in finished[:3]] + [f"operation-{running.pk}"]
    assert folded == [f"operation-{op.pk}" for op in finished[3:]]
    assert page.xpath("string(//details[@id='operations-folded']/summary)") == "2 more finished operations"
    assert page.xpath("//details[@id='operations-folded']/@open") == []  # folded until opened
    assert f"operation-{old.pk}" not in page.text_content() and not page.xpath(f"//*[@id='operation-{old.pk}']")


def test_it_folds_nothing_when_few_finished(domain, admin_client):
    operation(domain, OperationState.SUCCEEDED, 5)
    operation(domain, OperationState.RUNNING, 3)
    page = html.fromstring(admin_client.get(reverse("domains:detail", args=[domain.pk])).content)
    assert len(page.xpath("//div[contains(@class, 'operation-status')]")) == 2
    assert not page.xpath("//details[@id='operations-folded']")
