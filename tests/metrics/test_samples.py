"""Graph samples: rates from the real libvirtd's counters, the per-minute downsampling, the series."""
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import libvirt
import pytest
from django.db import connection
from django.utils import timezone

from domains import identity
from domains.identity import domain_gone
from domains.models import Domain
from hosts.models import Host
from hosts.services import host_register_local
from inventory.reconcile import host_reconcile
from metrics.models import Resolution, Sample
from metrics.sampler import HostSampler, compact, samples_store, series

pytestmark = [pytest.mark.django_db]


@pytest.mark.integration
def test_two_readings_give_a_sample_per_running_vm_and_one_for_the_host(local_libvirt, guests):
    guest = guests.define(local_libvirt, start=True)
    host, _ = host_register_local()
    host_reconcile(host=host, fresh=True)
    domain = Domain.objects.get(host=host, uuid=guest.UUIDString())
    sampler = HostSampler(host.pk)
    conn = libvirt.open(local_libvirt)
    assert sampler.sample(conn) == 0  # a rate needs two readings
    time.sleep(1.0)
    assert sampler.sample(conn) >= 2
    vm = Sample.objects.get(domain=domain)
    assert 0 <= vm.cpu_percent <= 100 and vm.memory_kib > 0
    assert vm.disk_read_bps == 0 and vm.net_rx_bps == 0  # diskless, no NIC
    host_row = Sample.objects.get(host=host, domain=None)
    assert 0 < host_row.cpu_percent <= 100 and host_row.memory_kib > 0
    assert host_row.vms_memory_kib >= vm.memory_kib


def make_samples(host, domain, start, count: int, *, step: int = 5, resolution=Resolution.FINE):
    Sample.objects.bulk_create(
        Sample(host=host, domain=domain, resolution=resolution, at=start + timedelta(seconds=step * index),
               cpu_percent=float(index % 12), memory_kib=1000 + index, disk_read_bps=100.0)
        for index in range(count))


def test_fine_samples_older_than_an_hour_become_one_averaged_point_per_minute_and_old_ones_go():
    host, _ = host_register_local()
    domain = Domain.objects.create(host=host, uuid="1b4e28ba-2fa1-41d2-883f-0016d3cca427", name="graphed",
                                   synced_at=timezone.now())
    now = timezone.now().replace(second=30, microsecond=0)
    two_hours_ago = (now - timedelta(hours=2)).replace(second=0)
    make_samples(host, domain, two_hours_ago, 36)  # three whole minutes, every 5 s
    make_samples(host, domain, now - timedelta(minutes=10), 24)  # recent: kept as they are
    make_samples(host, domain, now - timedelta(hours=30), 3, step=60, resolution=Resolution.MINUTE)  # too old

    written, deleted = compact(host_id=host.pk, now=now)

    assert written == 3 and deleted == 36 + 3
    minutes = list(Sample.objects.filter(domain=domain, resolution=Resolution.MINUTE).order_by("at"))
    assert [m.at for m in minutes] == [two_hours_ago + timedelta(minutes=n) for n in range(3)]
    assert [m.cpu_percent for m in minutes] == [5.5, 5.5, 5.5]  # the average of 0..11
    assert minutes[0].memory_kib == round(sum(1000 + i for i in range(12)) / 12)
    assert Sample.objects.filter(domain=domain, resolution=Resolution.FINE).count() == 24

    columns = series(host_id=host.pk, domain_id=domain.pk, since=now - timedelta(hours=24),
                     fields=("cpu_percent", "memory_kib"))
    assert len(columns["t"]) == 3 + 24 and columns["t"] == sorted(columns["t"])
    assert columns["cpu_percent"][:3] == [5.5, 5.5, 5.5]


def test_the_series_view_answers_json_for_a_range_and_after_a_point(client, django_user_model):
    host, _ = host_register_local()
    domain = Domain.objects.create(host=host, uuid="1b4e28ba-2fa1-41d2-883f-0016d3cca428", name="graphed",
                                   synced_at=timezone.now())
    make_samples(host, domain, timezone.now() - timedelta(minutes=5), 12)
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    full = client.get(f"/metrics/vm/{domain.pk}.json?range=1h").json()["series"]
    assert len(full["t"]) == 12 and set(full) >= {"cpu_percent", "memory_kib", "net_tx_bps"}
    after = client.get(f"/metrics/vm/{domain.pk}.json?since={full['t'][9]}").json()["series"]
    assert after["t"] == full["t"][10:]
    assert client.get(f"/metrics/vm/{domain.pk}.json?since=not-a-number").status_code == 200
    assert client.get("/metrics/vm/999999.json").status_code == 404
    client.logout()
    assert client.get(f"/metrics/vm/{domain.pk}.json").status_code == 302  # to the login page


@pytest.mark.django_db(transaction=True)
def test_a_round_leaves_out_the_rows_of_a_vm_deleted_since_it_read_their_ids() -> None:
    host = Host.objects.create(name="sampled", transport="test", address="/default")
    kept, deleted = (Domain.objects.create(host=host, name=name, uuid=uuid.uuid4(), synced_at=timezone.now()) for name in ("kept", "gone"))
    now = timezone.now()
    rows = [Sample(host=host, domain=domain, at=now, cpu_percent=1.0, memory_kib=1) for domain in (kept, deleted)]
    rows.append(Sample(host=host, domain=None, at=now, cpu_percent=1.0, memory_kib=1))
    domain_gone(deleted.pk)
    assert len(samples_store(rows)) == 2
    assert set(Sample.objects.values_list("domain_id", flat=True)) == {kept.pk, None}


@pytest.mark.django_db(transaction=True)
def test_a_vm_row_being_deleted_holds_back_a_sample_of_it_until_it_is_gone(monkeypatch) -> None:
    """CI once failed a VM deletion on PostgreSQL: the listener stored a graph sample of the VM after
    the deletion had removed its samples and before it removed the row. (On SQLite the deletion's
    IMMEDIATE transaction holds the one write lock from its start, so the sample waits there too.)"""
    host = Host.objects.create(name="sampled", transport="test", address="/default")
    domain = Domain.objects.create(host=host, name="going", uuid=uuid.uuid4(), synced_at=timezone.now())
    inside, release = threading.Event(), threading.Event()

    def tombstone_then_wait(**kwargs):
        inside.set()
        release.wait(10)

    monkeypatch.setattr(identity, "tombstone_record", tombstone_then_wait)
    deletion = ThreadPoolExecutor(1).submit(run_closing_connection, domain_gone, domain.pk)
    assert inside.wait(10)
    sample = Sample(host=host, domain=domain, at=timezone.now(), cpu_percent=1.0, memory_kib=1)
    storing = ThreadPoolExecutor(1).submit(run_closing_connection, samples_store, [sample])
    time.sleep(0.5)
    assert not storing.done(), "a sample of a VM whose row is being deleted was stored"
    release.set()
    assert deletion.result(10) == identity.DELETED
    assert storing.result(10) == []
    assert not Domain.objects.filter(pk=domain.pk).exists() and not Sample.objects.exists()


def run_closing_connection(function, *args):
    try:
        return function(*args)
    finally:
        connection.close()
