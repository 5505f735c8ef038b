"""The dashboard counts only what the user may see: a grant on one VM shows that VM's figures (its
state, its load, its failed operations) and nothing of its host or its neighbours; a viewer of one
host sees that host and nothing of another; an API token reaches no dashboard."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Grant, Role
from domains.choices import DomainState
from domains.models import Domain
from hosts.models import Host
from metrics.models import Sample
from operations.models import Operation
from storage.models import StoragePool
from tests.api.conftest import token_client

pytestmark = [pytest.mark.integration, pytest.mark.django_db]  # the page reads the listeners' leases in Redis
SECRET = "secret-"  # every name the user may not see starts so


def domain(host: Host, name: str, state=DomainState.RUNNING) -> Domain:
    return Domain.objects.create(host=host, uuid=uuid.uuid4(), name=name, state=state, vcpus=2,
                                 memory_kib=1024 * 1024, synced_at=timezone.now())


def failed(target: Domain, user=None) -> Operation:
    return Operation.objects.create(kind="domain.start", target_type="domain", target_id=target.pk,
                                    target_label=target.name, host=target.host, user=user, state="failed",
                                    error=f"failed on {target.name}", finished_at=timezone.now() - timedelta(minutes=5))


@pytest.fixture
def world(redis_ready):
    now = timezone.now()
    host = Host.objects.create(name=f"{SECRET}host", transport="tcp", address="127.0.0.251", status="offline",
                               status_reason=f"{SECRET}reason", cpu_count=16, memory_kib=64 * 1024 * 1024)
    other = Host.objects.create(name=f"{SECRET}other-host", transport="tcp", address="127.0.0.252", status="error",
                                status_reason=f"{SECRET}credentials")
    StoragePool.objects.create(host=host, uuid=uuid.uuid4(), name=f"{SECRET}pool", pool_type="dir", active=True,
                               capacity=100, allocation=99, available=1, synced_at=now)
    mine = domain(host, "mine")
    neighbours = [domain(host, f"{SECRET}neighbour-{n}", DomainState.PAUSED) for n in range(3)]
    far = domain(other, f"{SECRET}far")
    Sample.objects.create(host=host, domain=None, at=now, cpu_percent=93.0, memory_kib=60 * 1024 * 1024)
    Sample.objects.create(host=host, domain=mine, at=now, cpu_percent=12.0, memory_kib=1, net_rx_bps=2048.0)
    for vm in neighbours:
        Sample.objects.create(host=host, domain=vm, at=now, cpu_percent=97.0, memory_kib=1, disk_read_bps=9e9,
                              net_rx_bps=9e9)
    Sample.objects.create(host=other, domain=None, at=now, cpu_percent=50.0, memory_kib=1)
    Sample.objects.create(host=other, domain=far, at=now, cpu_percent=99.0, memory_kib=1)
    users = get_user_model().objects
    tenant = users.create_user("tenant", password="x")
    Grant.objects.create(user=tenant, domain=mine, role=Role.VIEWER)
    failed(mine)
    failed(neighbours[0])
    failed(far)
    viewer = users.create_user("host-viewer", password="x")
    Grant.objects.create(user=viewer, host=other, role=Role.VIEWER)
    return {"host": host, "other": other, "mine": mine, "far": far, "tenant": tenant, "viewer": viewer}


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_grant_on_one_vm_shows_that_vms_figures_and_nothing_of_its_host(world):
    response = logged_in(world["tenant"]).get(reverse("dashboard"))
    page = response.content.decode()
    assert SECRET not in page
    assert response.context["hosts"] == [] and "No hosts you may see." in page
    assert response.context["domain_total"] == 1 and response.context["state_counts"] == [("Running", "success", 1)]
    columns = {column: rows for _, rows, column in response.context["busiest_columns"]}
    assert [row.name for row in columns["cpu"]] == ["mine"] and columns["disk"] == []
    assert [row.net_text for row in columns["net"]] == ["2.0 KiB/s"]
    attention = response.context["attention"]  # their VM's failure, under no host name
    assert [(item.host, item.reasons) for item in attention] == [(None, [(4, "1 failed operation in the last hour")])]
    assert "93%" not in page and "host busy" not in page  # the host's load

    fragment = logged_in(world["tenant"]).get(reverse("dashboard_busiest")).content.decode()
    assert SECRET not in fragment and "mine" in fragment


def test_a_viewer_of_one_host_sees_that_host_and_nothing_of_another(world):
    response = logged_in(world["viewer"]).get(reverse("dashboard"))
    page = response.content.decode()
    assert [host.name for host in response.context["hosts"]] == [world["other"].name]
    assert f"{SECRET}host" not in page.replace(f"{SECRET}other-host", "") and f"{SECRET}pool" not in page
    assert response.context["domain_total"] == 1
    assert [item.host.name for item in response.context["attention"]] == [world["other"].name]
    assert [text for _, text in response.context["attention"][0].reasons] == [
        "Credentials failing: secret-credentials", "Not watched: no event listener follows it",
        "1 failed operation in the last hour"]
    columns = {column: rows for _, rows, column in response.context["busiest_columns"]}
    assert [row.name for row in columns["cpu"]] == [world["far"].name] and columns["net"] == []


def test_no_grant_sees_an_empty_dashboard_and_anonymous_is_sent_to_log_in(world):
    nobody = get_user_model().objects.create_user("nobody", password="x")
    page = logged_in(nobody).get(reverse("dashboard")).content.decode()
    assert SECRET not in page and "mine" not in page and "Nothing needs attention." in page
    assert "No hosts registered." not in page  # there are hosts: none they may see (found in a walk)
    assert page.count("No hosts you may see.") == 2  # the capacity table and the hosts table
    for url in (reverse("dashboard"), reverse("dashboard_busiest")):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert token_client(world["tenant"]).get(reverse("dashboard_busiest")).status_code == 302  # pages: sessions only


def test_scoped_figures_cost_no_more_queries_than_an_administrators(world, admin_client,
                                                                    django_assert_max_num_queries):
    for client in (logged_in(world["tenant"]), logged_in(world["viewer"]), admin_client):
        with django_assert_max_num_queries(13):  # 3 of them for backups' attention (jobs, failed health checks)
            assert client.get(reverse("dashboard")).status_code == 200
        with django_assert_max_num_queries(4):
            assert client.get(reverse("dashboard_busiest")).status_code == 200
