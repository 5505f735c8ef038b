"""Every lifecycle action through a real worker against the real libvirtd, checked with libvirt."""
import libvirt
import pytest
from django.db import transaction
from django.urls import reverse

from domains.choices import DomainState
from domains.models import Domain
from domains.services import ActionNotAllowed, DomainBusy, domain_action_enqueue
from operations.choices import OperationState
from operations.models import Operation
from storage.records import volume_record_made
from tests.domains.helpers import LOCAL, cached
from tests import stack

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]





def act(domain: Domain, action: str, **arguments) -> Operation:
    operation = domain_action_enqueue(domain=domain, action=action, user=None, arguments=arguments)

    def done():
        operation.refresh_from_db()
        return operation.is_finished

    stack.wait_until(done, timeout=60, message=f"{action} to finish")
    domain.refresh_from_db()
    return operation


def stale(domain: Domain, state: int) -> None:
    """The row says `state` while the VM is elsewhere (a change the listener has not stored yet):
    the service lets the action through, and the worker meets the VM as it really is."""
    Domain.objects.filter(pk=domain.pk).update(state=state)
    domain.refresh_from_db()


def libvirt_state(guest: libvirt.virDomain) -> int:
    return guest.state()[0]


def test_it_starts_pauses_resumes_resets_reboots_and_forces_off(celery_worker, local_host, guests):
    guest = guests.define(LOCAL)
    domain = cached(local_host, guest)
    assert act(domain, "start").message == "Started"
    assert libvirt_state(guest) == libvirt.VIR_DOMAIN_RUNNING and domain.state == DomainState.RUNNING
    with pytest.raises(ActionNotAllowed, match="Start is not possible while .* is running"):
        domain_action_enqueue(domain=domain, action="start", user=None)  # refused before anything is queued
    stale(domain, DomainState.SHUTOFF)
    assert act(domain, "start").message == "Already running"  # idempotent on the host
    act(domain, "pause")
    assert libvirt_state(guest) == libvirt.VIR_DOMAIN_PAUSED and domain.state == DomainState.PAUSED
    act(domain, "resume")
    assert libvirt_state(guest) == libvirt.VIR_DOMAIN_RUNNING
    assert act(domain, "reset").state == OperationState.SUCCEEDED
    assert act(domain, "reboot").state == OperationState.SUCCEEDED
    act(domain, "force_off")
    assert libvirt_state(guest) == libvirt.VIR_DOMAIN_SHUTOFF and domain.state == DomainState.SHUTOFF
    stale(domain, DomainState.RUNNING)
    assert act(domain, "force_off").message == "Already off"
    stale(domain, DomainState.RUNNING)
    reset = act(domain, "reset")
    assert reset.state == OperationState.FAILED and "not running" in reset.error
    stale(domain, DomainState.SHUTOFF)  # the truth again, whatever the failed reset left in the row
    act(domain, "start_paused")
    assert libvirt_state(guest) == libvirt.VIR_DOMAIN_PAUSED


def test_it_says_when_a_guest_ignores_shutdown_and_offers_force_off(celery_worker, local_host, guests):
    guest = guests.define(LOCAL, start=True)  # SeaBIOS with no OS: nothing answers ACPI
    domain = cached(local_host, guest)
    operation = act(domain, "shutdown", timeout=2)
    assert operation.state == OperationState.FAILED
    assert "did not shut down within 2 s" in operation.error and "Force off" in operation.error
    assert libvirt_state(guest) == libvirt.VIR_DOMAIN_RUNNING


def test_it_saves_and_restores_a_running_vm(celery_worker, local_host, guests):
    guest = guests.define(LOCAL, start=True)
    domain = cached(local_host, guest)
    act(domain, "save")
    assert guest.hasManagedSaveImage(0) and libvirt_state(guest) == libvirt.VIR_DOMAIN_SHUTOFF
    assert domain.has_managed_save and domain.state == DomainState.SHUTOFF
    assert act(domain, "start").message == "Restored from its saved state"
    assert libvirt_state(guest) == libvirt.VIR_DOMAIN_RUNNING and not guest.hasManagedSaveImage(0)


def test_it_sets_autostart_and_renames_a_shut_off_vm(celery_worker, local_host, guests, admin_client):
    guest = guests.define(LOCAL)
    domain = cached(local_host, guest)
    act(domain, "autostart_on")
    assert guest.autostart() == 1 and domain.autostart
    act(domain, "autostart_off")
    assert guest.autostart() == 0
    new_name = guest.name() + "-renamed"
    guests.created.append((LOCAL, new_name))
    response = admin_client.post(reverse("domains:rename", args=[domain.pk]), {"name": new_name})
    assert response.status_code == 302
    operation = Operation.objects.get(kind="domain.rename")
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=30, message="rename")
    assert libvirt.open(LOCAL).lookupByUUIDString(guest.UUIDString()).name() == new_name
    domain.refresh_from_db()
    assert domain.name == new_name


def test_it_deletes_a_vm_with_its_volume_after_naming_what_goes(celery_worker, local_host, guests, admin_client,
                                                                 scratch_pool):
    path = scratch_pool.create_volume("disk0.qcow2").path()
    guest = guests.define(LOCAL, disk_path=path)
    domain = cached(local_host, guest)
    volume_record_made(host=local_host, key=path, format="qcow2", owner_uuid=guest.UUIDString())  # the VM's own
    page = admin_client.get(reverse("domains:delete", args=[domain.pk])).content.decode()
    assert path in page and "NVRAM" in page

    refused = admin_client.post(reverse("domains:delete", args=[domain.pk]), {"confirm_name": "wrong"})
    assert refused.status_code == 400 and not Operation.objects.exists()
    admin_client.post(reverse("domains:delete", args=[domain.pk]),
                      {"confirm_name": domain.name, "with_volumes": "on"})
    operation = Operation.objects.get(kind="domain.delete")
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=30, message="delete")
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED and path in operation.message
    with pytest.raises(libvirt.libvirtError):
        libvirt.open(LOCAL).lookupByUUIDString(guest.UUIDString())
    assert "disk0.qcow2" not in scratch_pool.pool.listVolumes()
    assert not Domain.objects.filter(pk=domain.pk).exists()


def test_it_refuses_a_second_operation_while_one_is_unfinished(local_host, guests):
    domain = cached(local_host, guests.define(LOCAL))
    with transaction.atomic():  # the first stays pending: its task is only queued on commit
        first = domain_action_enqueue(domain=domain, action="start", user=None)
        with pytest.raises(DomainBusy, match=f"busy: domain.start #{first.pk} is pending"):
            domain_action_enqueue(domain=domain, action="force_off", user=None)
        transaction.set_rollback(True)


def test_it_starts_selected_vms_in_bulk_one_operation_each(celery_worker, local_host, guests, admin_client):
    first, second = guests.define(LOCAL), guests.define(LOCAL)
    domains = [cached(local_host, first), cached(local_host, second)]
    response = admin_client.post(reverse("domains:bulk"), {"action": "start", "domains": [d.pk for d in domains]})
    assert response.status_code == 302
    operations = Operation.objects.filter(kind="domain.start")
    assert operations.count() == 2
    stack.wait_until(lambda: all(op.is_finished for op in Operation.objects.filter(kind="domain.start")),
                     timeout=30, message="bulk start")
    assert libvirt_state(first) == libvirt_state(second) == libvirt.VIR_DOMAIN_RUNNING


def test_it_offers_only_the_buttons_the_state_allows(local_host, guests, admin_client):
    off = cached(local_host, guests.define(LOCAL))
    running = cached(local_host, guests.define(LOCAL, start=True))
    off_page = admin_client.get(reverse("domains:detail", args=[off.pk])).content.decode()
    running_page = admin_client.get(reverse("domains:detail", args=[running.pk])).content.decode()
    assert 'data-action="start"' in off_page and 'data-action="shutdown"' not in off_page
    assert 'data-action="rename"' in off_page and 'data-action="rename"' not in running_page
    assert 'data-action="shutdown"' in running_page and 'data-action="start"' not in running_page


@pytest.mark.parametrize("name", ["<b>", "a>b", "a&b", 'a"b', "a'b", "a/b", "a b", " lead", "x" * 300, ""])
def test_it_refuses_bad_new_names(local_host, guests, admin_client, name):
    domain = cached(local_host, guests.define(LOCAL))
    response = admin_client.post(reverse("domains:rename", args=[domain.pk]), {"name": name})
    assert response.status_code == 400 and response.context["form"].errors["name"]
    assert not Operation.objects.exists()


def test_it_refuses_a_name_already_used_on_the_host(local_host, guests, admin_client):
    first, second = guests.define(LOCAL), guests.define(LOCAL)
    domain = cached(local_host, first)
    response = admin_client.post(reverse("domains:rename", args=[domain.pk]), {"name": second.name()})
    assert "is taken on this VM's host" in response.context["form"].errors["name"][0]
    assert not Operation.objects.exists()


def test_it_fails_a_shutdown_whose_worker_was_killed_mid_operation(local_host, guests, redis_ready, stack_log_dir,
                                                                  settings):
    from operations.services import operations_sweep

    settings.OPERATIONS_QUEUE = "domain-sweep-test"  # only the worker this test kills listens here
    worker = stack.start_worker("doomed-domain-worker", log_dir=stack_log_dir, queues="domain-sweep-test",
                                concurrency=1)
    try:
        domain = cached(local_host, guests.define(LOCAL, start=True))  # no OS: ignores the ACPI request
        operation = domain_action_enqueue(domain=domain, action="shutdown", user=None, arguments={"timeout": 60})
        stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).progress > 10, timeout=20,
                         message="the shutdown to be waiting for the guest")
        worker.kill()
        stack.wait_until(lambda: operations_sweep() == 1, timeout=settings.OPERATION_HEARTBEAT_TIMEOUT + 5,
                         message="the sweep to fail the orphaned operation")
        operation.refresh_from_db()
        assert operation.state == OperationState.FAILED and "stopped responding" in operation.error
        # The VM is free again for the next operation.
        domain_action_enqueue(domain=domain, action="force_off", user=None)
    finally:
        worker.stop()


def test_it_reads_the_template_mark_of_a_new_vm_and_refuses_to_start_a_template(local_host, guests, admin_client):
    from domains.services import ActionNotAllowed
    from virt.clone import mark_template

    guest = guests.define(LOCAL)
    mark_template(guest, template=True)  # as a vmsite elsewhere, or before a re-register, left it
    domain = cached(local_host, guest)
    assert domain.is_template
    with pytest.raises(ActionNotAllowed, match="is a template"):
        domain_action_enqueue(domain=domain, action="start", user=None)
    response = admin_client.post(reverse("domains:bulk"), {"action": "start", "domains": [domain.pk]}, follow=True)
    assert "is a template" in response.content.decode()
    assert not Operation.objects.exists() and guest.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
