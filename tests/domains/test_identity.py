"""A VM keeps one identity across hosts (issue 16, bug 3): when its row finds the VM gone from its
host, the row moves to where the VM is now (folding in any row made there meanwhile), waits while a
migration runs, or leaves a tombstone whose old URL answers 410. The rows are made by hand: what
libvirt reports is not the point here (tests/domains/test_migration.py runs real migrations)."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Grant, Role
from domains.choices import DomainState
from domains.identity import DELETED, KEPT, MOVED, domain_gone
from domains.models import Domain
from hosts.models import Host
from metrics.models import Sample
from networking.models import VirtualNetwork
from networking.sync import networks_gone
from operations.choices import OperationState
from operations.models import Operation
from tombstones.models import Tombstone

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def pair():
    now = timezone.now()
    source = Host.objects.create(name="src", transport="tcp", address="127.0.0.230", status="online")
    destination = Host.objects.create(name="dst", transport="tcp", address="127.0.0.231", status="online")
    vm = Domain.objects.create(host=source, uuid=uuid.uuid4(), name="web", state=DomainState.RUNNING, synced_at=now)
    return source, destination, vm


def sample(host: Host, domain: Domain, seconds_ago: int) -> Sample:
    return Sample.objects.create(host=host, domain=domain, at=timezone.now() - timedelta(seconds=seconds_ago),
                                 cpu_percent=12.5, memory_kib=65536)


def operation_on(domain: Domain, kind: str = "domain.start", state: str = OperationState.SUCCEEDED,
                 user=None) -> Operation:
    return Operation.objects.create(kind=kind, target_type="domain", target_id=domain.pk, target_label=domain.name,
                                    host=domain.host, state=state, user=user)


def test_it_moves_the_row_to_where_the_vm_is_now_and_keeps_its_history(pair, admin_client, django_user_model):
    source, destination, vm = pair
    history = operation_on(vm)
    sample(source, vm, 30)
    alice = django_user_model.objects.create_user("alice-id")
    Grant.objects.create(user=alice, domain=vm, role=Role.OPERATOR)
    # The destination's listener heard of the VM first and made a row, a sample and a grant there.
    there = Domain.objects.create(host=destination, uuid=vm.uuid, name="web", state=DomainState.PAUSED,
                                  synced_at=timezone.now(), vcpus=2)
    sample(destination, there, 5)
    bob = django_user_model.objects.create_user("bob-id")
    Grant.objects.create(user=bob, domain=there, role=Role.VIEWER)
    operation_on(there, kind="domain.resume")

    assert domain_gone(vm.pk) == MOVED
    vm.refresh_from_db()
    assert vm.host == destination and vm.state == DomainState.PAUSED and vm.vcpus == 2
    assert not Domain.objects.filter(pk=there.pk).exists()
    assert set(Operation.objects.filter(target_type="domain").values_list("target_id", flat=True)) == {vm.pk}
    assert Operation.objects.get(pk=history.pk).target_id == vm.pk
    assert Sample.objects.filter(domain=vm).count() == 2
    assert set(Grant.objects.filter(domain=vm).values_list("user__username", flat=True)) == {"alice-id", "bob-id"}

    # One page, one graph series across both hosts; the other row's old id forwards.
    page = admin_client.get(reverse("domains:detail", args=[vm.pk]))
    assert page.status_code == 200 and "dst" in page.content.decode()
    series = admin_client.get(reverse("metrics:domain_series", args=[vm.pk])).json()
    assert len(series["series"]["t"]) == 2 and series["host"] == destination.pk
    assert Tombstone.objects.get(object_id=there.pk).how == "its row was folded into the VM's older one"
    forwarded = admin_client.get(reverse("domains:detail", args=[there.pk]))
    assert forwarded.status_code == 302 and forwarded.url == reverse("domains:detail", args=[vm.pk])
    graphs = admin_client.get(reverse("metrics:domain_series", args=[there.pk]) + "?range=1h")
    assert graphs.status_code == 302 and graphs.url == reverse("metrics:domain_series", args=[vm.pk]) + "?range=1h"


def test_it_keeps_the_row_while_a_migration_runs(pair):
    _, _, vm = pair
    operation_on(vm, kind="domain.migrate", state=OperationState.RUNNING)
    assert domain_gone(vm.pk) == KEPT
    assert Domain.objects.filter(pk=vm.pk).exists() and not Tombstone.objects.exists()


def test_a_deleted_vms_page_says_what_happened_and_links_to_the_list(pair, admin_client, admin_user):
    _, _, vm = pair
    sample(vm.host, vm, 10)
    operation_on(vm, kind="domain.delete", state=OperationState.RUNNING, user=admin_user)
    assert domain_gone(vm.pk) == DELETED
    assert not Domain.objects.filter(pk=vm.pk).exists()

    response = admin_client.get(reverse("domains:detail", args=[vm.pk]))
    assert response.status_code == 410
    page = response.content.decode()
    assert "The VM web is gone from src (delete, operation #" in page and f"by {admin_user.username}" in page
    assert f'href="{reverse("domains:list")}"' in page
    # The graphs stop asking: a 410 with words, not a 404 every few seconds.
    graphs = admin_client.get(reverse("metrics:domain_series", args=[vm.pk]))
    assert graphs.status_code == 410 and graphs.json()["error"].startswith("The VM web is gone from src")
    # An id that never existed is still a plain 404.
    assert admin_client.get(reverse("domains:detail", args=[vm.pk + 1000])).status_code == 404


def test_a_vm_removed_outside_vmsite_says_so(pair, admin_client):
    _, _, vm = pair
    domain_gone(vm.pk)
    page = admin_client.get(reverse("domains:detail", args=[vm.pk])).content.decode()
    assert "removed outside vmsite" in page


def test_a_vm_migrated_outside_vmsite_forwards_to_its_new_row(pair, admin_client):
    source, destination, vm = pair
    domain_gone(vm.pk)  # the source's reconcile ran first: no row on the destination yet
    later = Domain.objects.create(host=destination, uuid=vm.uuid, name="web", synced_at=timezone.now())
    response = admin_client.get(reverse("domains:detail", args=[vm.pk]))
    assert response.status_code == 302 and response.url == reverse("domains:detail", args=[later.pk])
    # A console's Reconnect (a script's POST) is told where the VM is now.
    token = admin_client.post(reverse("consoles:token", args=[vm.pk]), HTTP_X_CSRFTOKEN="x")
    assert token.status_code == 410 and token.json()["moved_to"] == reverse("consoles:token", args=[later.pk])


def test_a_deleted_networks_page_says_so(pair, admin_client):
    source, _, _ = pair
    network = VirtualNetwork.objects.create(host=source, uuid=uuid.uuid4(), name="lan", synced_at=timezone.now())
    networks_gone([network.pk])
    response = admin_client.get(reverse("networking:detail", args=[network.pk]))
    assert response.status_code == 410
    page = response.content.decode()
    assert "The network lan is gone from src" in page and f'href="{reverse("networking:list")}"' in page
