"""Who may read what is left of a deleted VM or network (issue 16, bug 3): only those who could see
it (its host's users, the users of its own grants, administrators). Everyone else gets the 404 of an
id that never existed: not its name, not who deleted it, not where it went."""
from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Grant, Role
from domains.identity import domain_gone
from domains.models import Domain
from hosts.models import Host
from networking.models import VirtualNetwork
from networking.sync import networks_gone
from tests.api.conftest import token_client

pytestmark = [pytest.mark.django_db]
SECRET = "secret-"


def user_client(name: str, **grant) -> Client:
    user = get_user_model().objects.create_user(name, password="x")
    if grant:
        Grant.objects.create(user=user, **grant)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def gone():
    now = timezone.now()
    host = Host.objects.create(name="tomb-host", transport="tcp", address="127.0.0.232", status="online")
    other = Host.objects.create(name=f"{SECRET}host", transport="tcp", address="127.0.0.233", status="online")
    vm = Domain.objects.create(host=host, uuid=uuid.uuid4(), name=f"{SECRET}vm", synced_at=now)
    neighbour = Domain.objects.create(host=host, uuid=uuid.uuid4(), name="neighbour", synced_at=now)
    network = VirtualNetwork.objects.create(host=host, uuid=uuid.uuid4(), name=f"{SECRET}net", synced_at=now)
    clients = {
        "vm_operator": user_client("vm-op", domain=vm, role=Role.OPERATOR),
        "vm_viewer": user_client("vm-viewer", domain=vm, role=Role.VIEWER),
        "host_viewer": user_client("host-viewer", host=host, role=Role.VIEWER),
        "neighbour_operator": user_client("neighbour-op", domain=neighbour, role=Role.OPERATOR),
        "other_host_operator": user_client("other-op", host=other, role=Role.OPERATOR),
    }
    domain_gone(vm.pk)
    networks_gone([network.pk])
    return {"vm": vm, "network": network, "clients": clients}


@pytest.mark.parametrize("who, status", [("vm_operator", 410), ("vm_viewer", 410), ("host_viewer", 410),
                                         ("neighbour_operator", 404), ("other_host_operator", 404)])
def test_a_deleted_vms_page_answers_only_those_who_could_see_it(gone, who, status):
    client = gone["clients"][who]
    for url in (reverse("domains:detail", args=[gone["vm"].pk]),
                reverse("metrics:domain_series", args=[gone["vm"].pk])):
        response = client.get(url)
        assert response.status_code == status, (who, url)
        if status == 404:
            assert SECRET not in response.content.decode()


@pytest.mark.parametrize("who, status", [("vm_operator", 404), ("host_viewer", 410), ("neighbour_operator", 404),
                                         ("other_host_operator", 404)])
def test_a_deleted_networks_page_answers_only_its_hosts_users(gone, who, status):
    response = gone["clients"][who].get(reverse("networking:detail", args=[gone["network"].pk]))
    assert response.status_code == status
    if status == 404:
        assert SECRET not in response.content.decode()


def test_a_moved_vm_forwards_only_to_a_row_the_user_may_see(gone):
    # The VM turns up on a host the VM's own users have no grant on, and no longer a VM grant there.
    elsewhere = Host.objects.get(name=f"{SECRET}host")
    Domain.objects.create(host=elsewhere, uuid=gone["vm"].uuid, name=gone["vm"].name, synced_at=timezone.now())
    response = gone["clients"]["vm_viewer"].get(reverse("domains:detail", args=[gone["vm"].pk]))
    assert response.status_code == 410 and f"{SECRET}host\"" not in response.content.decode()
    assert "is gone from tomb-host" in response.content.decode()
    moved = gone["clients"]["other_host_operator"].get(reverse("domains:detail", args=[gone["vm"].pk]))
    assert moved.status_code == 404  # it could not see the VM where it was


@pytest.mark.integration  # the token check reads its lockout from Redis
def test_anonymous_and_token_clients_learn_nothing(gone, client):
    response = client.get(reverse("domains:detail", args=[gone["vm"].pk]))
    assert response.status_code == 302 and "/login/" in response.url
    user = get_user_model().objects.create_user("token-neighbour")
    api = token_client(user)
    assert api.get(f"/api/v1/vms/{gone['vm'].pk}/").status_code == 404
