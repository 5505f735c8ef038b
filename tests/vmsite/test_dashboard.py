"""The dashboard's figures against rows made here: capacity per host, VMs by state, what needs
attention (most urgent first), the busiest VMs now from the graphs' samples, and a number of
queries that does not grow with the number of hosts and VMs."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from domains.choices import DomainState
from domains.models import Domain
from events.watching import lease_key
from hosts.models import Host
from metrics.models import Resolution, Sample
from operations.models import Operation
from storage.models import StoragePool

pytestmark = [pytest.mark.integration, pytest.mark.django_db]  # reads the listeners' leases in Redis
GIB_KIB = 1024 * 1024
GIB = 1024 ** 3


@pytest.fixture
def leases(redis_ready):
    """watch(host): a listener holds the host's lease (it is watched); the rest are not watched."""
    held = []

    def watch(*hosts: Host) -> None:
        for host in hosts:
            redis_ready.set(lease_key(host.pk), "test-listener", px=60_000)
            held.append(lease_key(host.pk))

    yield watch
    if held:
        redis_ready.delete(*held)


def make_host(name: str, **fields) -> Host:
    fields.setdefault("status", "online")
    return Host.objects.create(name=name, transport="tcp", address="127.0.0.250", **fields)


def make_domain(host: Host, name: str, state=DomainState.RUNNING, **fields) -> Domain:
    return Domain.objects.create(host=host, uuid=uuid.uuid4(), name=name, state=state, synced_at=timezone.now(),
                                 **fields)


def make_pool(host: Host, name: str, capacity: int, allocation: int, active: bool = True) -> StoragePool:
    return StoragePool.objects.create(host=host, uuid=uuid.uuid4(), name=name, pool_type="dir", active=active,
                                      capacity=capacity, allocation=allocation, available=capacity - allocation,
                                      synced_at=timezone.now())


def sample(host: Host, domain: Domain | None, at, **figures) -> Sample:
    figures.setdefault("cpu_percent", 0.0)
    figures.setdefault("memory_kib", 0)
    return Sample.objects.create(host=host, domain=domain, at=at, **figures)


def failed_operation(host: Host, minutes_ago: int, user=None) -> Operation:
    finished = timezone.now() - timedelta(minutes=minutes_ago)
    return Operation.objects.create(kind="domain.start", target_type="host", target_id=host.pk, target_label=host.name,
                                    host=host, user=user, state="failed", error="boom", finished_at=finished)


def test_it_shows_each_hosts_capacity_against_what_it_has(admin_client, leases):
    host = make_host("cap-host", cpu_count=8, memory_kib=16 * GIB_KIB)
    leases(host)
    make_domain(host, "big", vcpus=2, memory_kib=GIB_KIB)
    make_domain(host, "small", vcpus=1, memory_kib=GIB_KIB // 2, state=DomainState.PAUSED)
    make_domain(host, "off", vcpus=4, memory_kib=4 * GIB_KIB, state=DomainState.SHUTOFF)  # holds nothing
    make_pool(host, "images", capacity=100 * GIB, allocation=40 * GIB)
    make_pool(host, "stopped", capacity=900 * GIB, allocation=900 * GIB, active=False)  # not counted
    now = timezone.now()
    sample(host, None, now - timedelta(seconds=10), cpu_percent=80.0, memory_kib=9 * GIB_KIB)
    sample(host, None, now, cpu_percent=37.4, memory_kib=3 * GIB_KIB)

    response = admin_client.get(reverse("dashboard"))
    gauges = response.context["hosts"][0].capacity
    assert (gauges["cpu"].used, gauges["cpu"].total, gauges["cpu"].percent) == (3, 8, 38)
    assert gauges["cpu"].text == "3 / 8 vCPUs" and gauges["cpu"].note == "host busy 37% now"
    assert gauges["memory"].text == "1.5 GiB / 16 GiB" and gauges["memory"].percent == 9
    assert gauges["memory"].note == "3.0 GiB in use on the host now"
    assert gauges["storage"].text == "40 GiB / 100 GiB" and gauges["storage"].percent == 40
    page = response.content.decode()
    assert "3 / 8 vCPUs" in page and "40 GiB / 100 GiB" in page


def test_a_host_not_yet_read_shows_dashes_not_zeros(admin_client, leases):
    leases(make_host("new-host"))
    gauges = admin_client.get(reverse("dashboard")).context["hosts"][0].capacity
    assert gauges == {"cpu": None, "memory": None, "storage": None}


def test_it_counts_vms_by_state(admin_client, leases):
    host = make_host("states")
    leases(host)
    for name, state in [("a", DomainState.RUNNING), ("b", DomainState.RUNNING), ("c", DomainState.SHUTOFF),
                        ("d", DomainState.PAUSED)]:
        make_domain(host, name, state=state)
    response = admin_client.get(reverse("dashboard"))
    assert response.context["domain_total"] == 4
    assert response.context["state_counts"] == [("Running", "success", 2), ("Paused", "warning", 1),
                                                ("Shut off", "secondary", 1)]
    assert "2 running" in response.content.decode()


def test_it_lists_hosts_that_need_attention_most_urgent_first(admin_client, leases):
    fine = make_host("h-fine")
    failed = make_host("h-failed")
    full = make_host("h-full")
    unwatched = make_host("h-unwatched")
    credentials = make_host("h-credentials", status="error", status_reason="Authentication failed")
    offline = make_host("h-offline", status="offline", status_reason="Connection refused")
    old_failure = make_host("h-old-failure")
    disabled = make_host("h-disabled", status="offline", enabled=False)
    leases(fine, failed, full, credentials, offline, old_failure)
    make_pool(full, "nearly", capacity=100 * GIB, allocation=95 * GIB)
    make_pool(fine, "roomy", capacity=100 * GIB, allocation=89 * GIB)
    failed_operation(failed, minutes_ago=10)
    failed_operation(failed, minutes_ago=50)
    failed_operation(old_failure, minutes_ago=70)
    failed_operation(offline, minutes_ago=1)  # a second reason: its place is its worst one's

    attention = admin_client.get(reverse("dashboard")).context["attention"]
    assert [item.host.name for item in attention] == ["h-offline", "h-credentials", "h-unwatched", "h-full",
                                                      "h-failed"]
    reasons = {item.host.name: [text for _, text in item.reasons] for item in attention}
    assert reasons["h-offline"] == ["Offline: Connection refused", "1 failed operation in the last hour"]
    assert reasons["h-credentials"] == ["Credentials failing: Authentication failed"]
    assert reasons["h-unwatched"] == ["Not watched: no event listener follows it"]
    assert reasons["h-full"] == ["Pool nearly is 95% full"]
    assert reasons["h-failed"] == ["2 failed operations in the last hour"]
    assert disabled.pk not in [item.host.pk for item in attention]


def test_nothing_needs_attention_says_so(admin_client, leases):
    leases(make_host("calm"))
    response = admin_client.get(reverse("dashboard"))
    assert response.context["attention"] == [] and "Nothing needs attention." in response.content.decode()


def test_the_busiest_vms_come_from_each_hosts_newest_samples(admin_client, leases):
    host, other = make_host("busy-1"), make_host("busy-2")
    leases(host, other)
    hot, warm, idle, far = (make_domain(host, "hot"), make_domain(host, "warm"), make_domain(host, "idle"),
                            make_domain(other, "far"))
    now = timezone.now()
    before = now - timedelta(seconds=5)
    sample(host, None, before)
    sample(host, idle, before, cpu_percent=99.0, disk_read_bps=9e9)  # busy before, idle now: not listed
    sample(host, None, now)
    sample(host, hot, now, cpu_percent=80.0, disk_read_bps=1024.0, disk_write_bps=1024.0, net_rx_bps=10.0)
    sample(host, warm, now, cpu_percent=20.0, disk_write_bps=3 * 1024 ** 2, net_tx_bps=2048.0)
    sample(host, idle, now)
    later = now + timedelta(seconds=1)  # the other host samples on its own clock
    sample(other, None, later)
    sample(other, far, later, cpu_percent=50.0, net_rx_bps=1024.0 ** 2)

    response = admin_client.get(reverse("dashboard"))
    columns = {column: rows for _, rows, column in response.context["busiest_columns"]}
    assert [row.name for row in columns["cpu"]] == ["hot", "far", "warm"]
    assert [(row.name, row.disk_text) for row in columns["disk"]] == [("warm", "3.0 MiB/s"), ("hot", "2.0 KiB/s")]
    assert [(row.name, row.net_text) for row in columns["net"]] == [("far", "1.0 MiB/s"), ("warm", "2.0 KiB/s"),
                                                                    ("hot", "10 B/s")]
    fragment = admin_client.get(reverse("dashboard_busiest"))
    assert fragment.status_code == 200
    page = fragment.content.decode()
    assert page.lstrip().startswith('<div id="dashboard-busiest"') and "3.0 MiB/s" in page and "Capacity" not in page


def test_samples_older_than_a_minute_are_not_now(admin_client, leases):
    host = make_host("stale")
    leases(host)
    vm = make_domain(host, "was-busy")
    old = timezone.now() - timedelta(minutes=2)
    sample(host, None, old)
    sample(host, vm, old, cpu_percent=90.0)
    sample(host, vm, timezone.now() - timedelta(minutes=3), cpu_percent=90.0, resolution=Resolution.MINUTE)
    columns = admin_client.get(reverse("dashboard")).context["busiest_columns"]
    assert all(rows == [] for _, rows, _ in columns)
    assert "Nothing busy now." in admin_client.get(reverse("dashboard_busiest")).content.decode()


def fill(hosts: int, vms: int, tag: str) -> None:
    now = timezone.now()
    for h in range(hosts):
        host = make_host(f"{tag}-{h}", cpu_count=4, memory_kib=8 * GIB_KIB, status=["online", "offline"][h % 2])
        make_pool(host, f"{tag}-pool-{h}", capacity=10 * GIB, allocation=(h % 10 + 1) * GIB)
        failed_operation(host, minutes_ago=5)
        sample(host, None, now, cpu_percent=10.0)
        for v in range(vms):
            domain = make_domain(host, f"{tag}-{h}-{v}", vcpus=1, memory_kib=GIB_KIB // 4)
            sample(host, domain, now, cpu_percent=float(v), disk_read_bps=float(v), net_rx_bps=float(v))


def count_queries(client, django_assert_max_num_queries, url: str) -> int:
    with django_assert_max_num_queries(20) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_the_number_of_queries_does_not_grow_with_hosts_and_vms(admin_client, leases, django_assert_max_num_queries):
    fill(2, 3, "few")
    few = count_queries(admin_client, django_assert_max_num_queries, reverse("dashboard"))
    few_busiest = count_queries(admin_client, django_assert_max_num_queries, reverse("dashboard_busiest"))
    fill(12, 25, "many")
    assert count_queries(admin_client, django_assert_max_num_queries, reverse("dashboard")) == few
    assert count_queries(admin_client, django_assert_max_num_queries, reverse("dashboard_busiest")) == few_busiest
    assert few <= 13 and few_busiest <= 4  # the session and the user included; 3 for backups' attention (jobs, health checks)


def test_hosts_are_listed_by_name_whatever_order_they_were_added_in(admin_client, leases):
    leases(make_host("zulu"), make_host("alpha"), make_host("mike"))
    response = admin_client.get(reverse("dashboard"))
    assert [host.name for host in response.context["hosts"]] == ["alpha", "mike", "zulu"]
