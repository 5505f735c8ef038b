"""The all-VMs list: search, filters, sorting and pages, in a fixed number of queries."""
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from domains.choices import DomainState
from domains.models import Domain
from hosts.models import Host

pytestmark = pytest.mark.django_db


@pytest.fixture
def inventory():
    hosts = [Host.objects.create(name=f"kvm{i}", transport="tcp", address=f"kvm{i}.example.org") for i in range(3)]
    now = timezone.now()
    Domain.objects.bulk_create(
        Domain(host=hosts[i % 3], uuid=uuid.UUID(int=i + 1), name=f"vm-{i:04d}", synced_at=now, vcpus=1 + i % 4,
               memory_kib=(i % 8 + 1) * 262144, state=DomainState.RUNNING if i % 2 else DomainState.SHUTOFF)
        for i in range(300)
    )
    return hosts


def names_in(response) -> list[str]:
    return [domain.name for domain in response.context["domains"]]


def test_it_paginates_by_100_in_name_order(admin_client, inventory, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("domains:list"), {"page": 2})
    assert names_in(response)[0] == "vm-0100" and len(names_in(response)) == 100
    assert response.context["paginator"].count == 300


def test_it_searches_by_name_and_by_uuid(admin_client, inventory):
    assert names_in(admin_client.get(reverse("domains:list"), {"q": "vm-012"})) == [f"vm-012{i}" for i in range(10)]
    wanted = str(uuid.UUID(int=43))
    assert names_in(admin_client.get(reverse("domains:list"), {"q": wanted})) == ["vm-0042"]


def test_it_filters_by_host_and_state(admin_client, inventory):
    response = admin_client.get(reverse("domains:list"), {"host": inventory[1].pk, "state": DomainState.RUNNING})
    domains = list(response.context["domains"])
    assert domains and all(d.host_id == inventory[1].pk and d.state == DomainState.RUNNING for d in domains)
    assert response.context["paginator"].count == 50


def test_it_sorts_by_any_column_both_ways(admin_client, inventory):
    memory = [d.memory_kib for d in admin_client.get(reverse("domains:list"), {"sort": "-memory"}).context["domains"]]
    assert memory == sorted(memory, reverse=True)
    hosts = [d.host.name for d in admin_client.get(reverse("domains:list"), {"sort": "host"}).context["domains"]]
    assert hosts == sorted(hosts)
    assert names_in(admin_client.get(reverse("domains:list"), {"sort": "nonsense"}))[0] == "vm-0000"


def test_it_ignores_malformed_filters(admin_client, inventory):
    response = admin_client.get(reverse("domains:list"), {"host": "x", "state": "'; drop", "page": "1"})
    assert response.status_code == 200 and response.context["paginator"].count == 300
