"""An operation's page links to what it acted on, from what its row recorded (operations/ reads no
VM or network row): "Open <VM>", "Open the network <name>"; nothing once the object is deleted."""
from __future__ import annotations

import uuid

import pytest
from django.urls import reverse
from django.utils import timezone
from lxml import html

from domains.models import Domain
from domains.services import domain_action_enqueue
from hosts.models import Host
from networking.models import VirtualNetwork
from networking.services import network_action_enqueue
from operations.models import Operation

pytestmark = pytest.mark.django_db


@pytest.fixture
def host() -> Host:
    return Host.objects.create(name=f"links-{uuid.uuid4().hex[:6]}", transport="test", address="default")


def result_links(client, operation: Operation) -> list[tuple[str, str]]:
    page = html.fromstring(client.get(reverse("operations:detail", args=[operation.pk])).content)
    return [(link.get("href"), link.text_content()) for link in page.xpath("//a[@id='result-link']")]


def test_a_vm_operation_links_to_the_vm_and_a_delete_to_nothing(host, admin_client):
    vm = Domain.objects.create(host=host, uuid=uuid.uuid4(), name="linked-vm", synced_at=timezone.now())
    metadata = domain_action_enqueue(domain=vm, action="set_metadata", user=None, arguments={"title": "t"})
    assert result_links(admin_client, metadata) == [(reverse("domains:detail", args=[vm.pk]), "Open linked-vm")]
    Operation.objects.filter(pk=metadata.pk).update(state="succeeded", finished_at=timezone.now())
    delete = domain_action_enqueue(domain=vm, action="delete", user=None)
    assert result_links(admin_client, delete) == []


def test_a_network_operation_links_to_the_network_and_a_delete_to_nothing(host, admin_client):
    network = VirtualNetwork.objects.create(host=host, uuid=uuid.uuid4(), name="lab", synced_at=timezone.now())
    start = network_action_enqueue(network=network, action="start", user=None)
    assert result_links(admin_client, start) == [(reverse("networking:detail", args=[network.pk]),
                                                  "Open the network lab")]
    Operation.objects.filter(pk=start.pk).update(state="succeeded", finished_at=timezone.now())
    assert result_links(admin_client, network_action_enqueue(network=network, action="delete", user=None)) == []
