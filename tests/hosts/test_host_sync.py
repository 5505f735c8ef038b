"""The first path end to end: a button enqueues, a real worker syncs from the real libvirtd."""
import libvirt
import pytest
from django.db import transaction
from django.urls import reverse

from accounts.models import Grant, Role
from domains.choices import DomainState
from domains.models import Domain
from hosts.services import host_register_local
from inventory.reconcile import host_reconcile
from operations.choices import OperationState
from operations.models import Operation
from tests import stack

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(operation_id: int) -> Operation:
    def done():
        operation = Operation.objects.get(pk=operation_id)
        return operation if operation.is_finished else None

    return stack.wait_until(done, timeout=30, message=f"operation {operation_id} to finish")


def press_sync(client, host) -> Operation:
    response = client.post(reverse("hosts:sync", args=[host.pk]))
    assert response.status_code == 302
    return Operation.objects.get(host=host, kind="host.sync")


def test_it_syncs_a_guest_from_libvirtd_into_the_domain_table_and_host_page(celery_worker, admin_client, guests):
    guest = guests.define("qemu:///system", start=True)
    host, _ = host_register_local()
    with transaction.atomic():  # the task is queued on commit: until then the row waits, pending
        pending = press_sync(admin_client, host)
        assert pending.state == OperationState.PENDING and pending.started_at is None

    operation = finished(pending.pk)
    assert operation.state == OperationState.SUCCEEDED, operation.error
    assert operation.created_at <= operation.started_at <= operation.finished_at
    assert operation.progress == 100 and operation.user.username == "admin"
    domain = Domain.objects.get(host=host, uuid=guest.UUIDString())
    assert (domain.name, domain.state) == (guest.name(), DomainState.RUNNING)
    host.refresh_from_db()
    assert host.status == "online" and host.hostname and host.libvirt_version

    page = admin_client.get(reverse("hosts:detail", args=[host.pk])).content.decode()
    assert guest.name() in page and "Running" in page


def test_it_applies_state_changes_and_removals_on_the_next_sync(celery_worker, admin_client, guests):
    kept = guests.define("qemu:///system", start=True)
    removed = guests.define("qemu:///system")
    host, _ = host_register_local()
    finished(press_sync(admin_client, host).pk)
    assert Domain.objects.filter(host=host, uuid__in=[kept.UUIDString(), removed.UUIDString()]).count() == 2

    kept.destroy()
    removed.undefine()
    Operation.objects.all().delete()
    # Other suites' guests come and go on the shared libvirtd: a row may name one that was there
    # when the sync listed the host, so rows are checked against the domains before and after it.
    conn = libvirt.open("qemu:///system")
    names = {d.name() for d in conn.listAllDomains()}
    assert finished(press_sync(admin_client, host).pk).state == OperationState.SUCCEEDED
    names |= {d.name() for d in conn.listAllDomains()}
    assert Domain.objects.get(host=host, uuid=kept.UUIDString()).state == DomainState.SHUTOFF
    assert not Domain.objects.filter(host=host, uuid=removed.UUIDString()).exists()
    assert {kept.name()} <= set(Domain.objects.filter(host=host).values_list("name", flat=True)) <= names


def test_the_next_reconcile_reads_a_shut_off_vms_memory_changed_with_no_event(guests):
    """`virsh setmem --config` on a shut-off VM sends no event: the periodic reconcile's bulk read is
    what sees it. libvirt reports such a VM's current memory there, or, when it has no balloon
    device, its maximum; a value at the maximum is left to the VM's XML (the row keeps what it said)."""
    host, _ = host_register_local()
    ballooned = guests.define("qemu:///system", balloon=True)
    without_balloon = guests.define("qemu:///system")
    host_reconcile(host=host, fresh=True)
    row = {domain: Domain.objects.get(host=host, uuid=domain.UUIDString()) for domain in (ballooned, without_balloon)}
    assert {domain: row[domain].memory_kib for domain in row} == {ballooned: 32 * 1024, without_balloon: 32 * 1024}

    for domain in row:
        domain.setMemoryFlags(24 * 1024, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    host_reconcile(host=host)
    assert Domain.objects.get(pk=row[ballooned].pk).memory_kib == 24 * 1024
    assert Domain.objects.get(pk=row[without_balloon].pk).memory_kib == 32 * 1024  # libvirt said 32 MiB: left


def test_it_refuses_sync_by_get_and_for_users_without_the_right(client, admin_client, db):
    host, _ = host_register_local()
    url = reverse("hosts:sync", args=[host.pk])
    assert client.post(url).status_code == 302  # anonymous: to the login page
    assert admin_client.get(url).status_code == 405
    viewer = _user_without_rights()
    client.force_login(viewer)
    assert client.post(url).status_code == 404  # not even shown to a user without a grant
    Grant.objects.create(user=viewer, host=host, role=Role.VIEWER)
    assert client.post(url).status_code == 403
    assert not Operation.objects.exists()


def _user_without_rights():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("viewer", password="not-used-here-1")
