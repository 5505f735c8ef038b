"""Internal snapshots through the pages and a real worker against the real libvirtd, checked with libvirt."""
import libvirt
import pytest
from django.db import transaction
from django.urls import reverse
from lxml import etree

from accounts.models import Grant, Role
from domains import snapshots
from domains.choices import DomainState
from domains.models import Domain
from domains.sync import domain_snapshots_store
from operations.choices import OperationState
from operations.models import Operation
from tests.domains.helpers import BAD_NAMES, LOCAL, cached
from tests import stack
from tests.guests import TEST_GUEST_PREFIX, small_guest_xml
from virt.snapshots import read_tree

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]





def finished(kind: str) -> Operation:
    """The latest operation of this kind, once it has finished."""
    operation = Operation.objects.filter(kind=kind).latest("pk")
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=60, message=kind)
    operation.refresh_from_db()
    return operation


def post(client, view: str, domain: Domain, data: dict):
    return client.post(reverse(f"domains:{view}", args=[domain.pk]), data)


def qcow2_guest(guests, scratch_pool, *, start: bool = False) -> libvirt.virDomain:
    path = scratch_pool.create_volume(f"{TEST_GUEST_PREFIX}{len(guests.created)}.qcow2").path()
    return guests.define(LOCAL, disk_path=path, start=start)


def raw_guest(guests, scratch_pool) -> libvirt.virDomain:
    path = scratch_pool.create_volume("raw.img", fmt="raw").path()
    name = f"{TEST_GUEST_PREFIX}raw-{len(guests.created)}"
    xml = etree.fromstring(small_guest_xml(name, disk_path=path))
    xml.find("./devices/disk/driver").set("type", "raw")
    guests.created.append((LOCAL, name))
    return libvirt.open(LOCAL).defineXML(etree.tostring(xml, encoding="unicode"))


def tree(domain: Domain) -> list[tuple[str, int]]:
    domain.refresh_from_db()
    return [(snapshot["name"], snapshot["depth"]) for snapshot in domain.snapshots]


def test_it_takes_reverts_and_deletes_snapshots_shut_off_and_running(celery_worker, local_host, guests,
                                                                     scratch_pool, admin_client):
    guest = qcow2_guest(guests, scratch_pool)
    domain = cached(local_host, guest)

    response = post(admin_client, "snapshot_create", domain, {"name": "base", "description": "clean", "mode": "disk"})
    assert response.status_code == 302
    assert finished("domain.snapshot_create").state == OperationState.SUCCEEDED
    assert guest.snapshotListNames(0) == ["base"] and guest.snapshotCurrent(0).getName() == "base"
    assert tree(domain) == [("base", 0)] and domain.snapshots[0]["description"] == "clean"
    assert not domain.snapshots[0]["with_memory"]

    guest.create()
    domain = cached(local_host, guest)
    post(admin_client, "snapshot_create", domain, {"name": "live", "mode": "memory"})
    operation = finished("domain.snapshot_create")
    assert operation.state == OperationState.SUCCEEDED and operation.message == "Snapshot live taken (with memory)"
    assert sorted(guest.snapshotListNames(0)) == ["base", "live"]
    assert guest.snapshotLookupByName("live", 0).getParent(0).getName() == "base"
    assert tree(domain) == [("base", 0), ("live", 1)] and domain.snapshots[1]["with_memory"]
    page = admin_client.get(reverse("domains:detail", args=[domain.pk])).content.decode()
    assert 'data-snapshot="base"' in page and 'data-snapshot="live"' in page

    post(admin_client, "snapshot_revert", domain, {"name": "base"})
    assert finished("domain.snapshot_revert").state == OperationState.SUCCEEDED
    domain.refresh_from_db()
    assert guest.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF and domain.state == DomainState.SHUTOFF
    assert guest.snapshotCurrent(0).getName() == "base"

    post(admin_client, "snapshot_revert", domain, {"name": "live"})
    assert finished("domain.snapshot_revert").message == "Reverted to live: the VM is now running"
    domain.refresh_from_db()
    assert guest.state()[0] == libvirt.VIR_DOMAIN_RUNNING and domain.state == DomainState.RUNNING

    # Deleting a parent keeps its children by default: they move up.
    post(admin_client, "snapshot_delete", domain, {"name": "base"})
    operation = finished("domain.snapshot_delete")
    assert operation.state == OperationState.SUCCEEDED and "1 child snapshot(s)" in operation.message
    assert guest.snapshotListNames(0) == ["live"] and tree(domain) == [("live", 0)]


def test_it_refreshes_the_tree_and_deletes_a_snapshot_with_its_children(celery_worker, local_host, guests,
                                                                       scratch_pool, admin_client):
    guest = qcow2_guest(guests, scratch_pool)
    for name in ["a", "b", "c"]:  # taken outside vmsite: a chain a > b > c
        guest.snapshotCreateXML(f"<domainsnapshot><name>{name}</name></domainsnapshot>", 0)
    domain = cached(local_host, guest)
    assert domain.snapshots == []
    admin_client.post(reverse("domains:snapshot_refresh", args=[domain.pk]))
    assert finished("domain.snapshot_refresh").message == "3 snapshot(s)"
    assert tree(domain) == [("a", 0), ("b", 1), ("c", 2)] and domain.snapshots[2]["current"]

    confirm = admin_client.get(reverse("domains:snapshot_delete", args=[domain.pk]), {"name": "b"})
    assert confirm.status_code == 200 and 'value="b"' in confirm.content.decode()
    post(admin_client, "snapshot_delete", domain, {"name": "b", "with_children": "on"})
    assert "the 1 snapshot(s) below it" in finished("domain.snapshot_delete").message
    assert guest.snapshotListNames(0) == ["a"] and tree(domain) == [("a", 0)]


def test_it_refuses_snapshots_the_disks_or_the_state_cannot_hold(local_host, guests, scratch_pool, admin_client):
    diskless = cached(local_host, guests.define(LOCAL))
    raw = cached(local_host, raw_guest(guests, scratch_pool))
    qcow2_vm = qcow2_guest(guests, scratch_pool)
    qcow2 = cached(local_host, qcow2_vm)

    def refusal(domain: Domain, mode: str) -> str:
        response = post(admin_client, "snapshot_create", domain, {"name": "s1", "mode": mode})
        assert response.status_code == 400
        return " ".join(response.context["form"].non_field_errors())

    assert "has no disks" in refusal(diskless, "disk")
    raw_refusal = refusal(raw, "disk")
    assert "Disk vda" in raw_refusal and "is raw" in raw_refusal and "need every disk to be qcow2" in raw_refusal
    assert "shut off, so it has no memory to save" in refusal(qcow2, "memory")
    qcow2_vm.create()
    qcow2 = cached(local_host, qcow2_vm)
    assert "must include its memory" in refusal(qcow2, "disk")
    assert not Operation.objects.exists()
    assert qcow2_vm.snapshotNum(0) == 0


def test_the_worker_refuses_a_raw_disk_in_words_when_the_page_was_stale(celery_worker, local_host, guests,
                                                                        scratch_pool):
    domain = cached(local_host, raw_guest(guests, scratch_pool))
    Domain.objects.filter(pk=domain.pk).update(details={})  # as if the page knew nothing of its disks
    snapshots.snapshot_create(domain=domain, user=None, name="s1", with_memory=False)
    operation = finished("domain.snapshot_create")
    assert operation.state == OperationState.FAILED
    assert "Disk vda" in operation.error and "is raw" in operation.error


@pytest.mark.parametrize("name", BAD_NAMES)
def test_it_refuses_bad_snapshot_names(local_host, guests, admin_client, name):
    domain = cached(local_host, guests.define(LOCAL))
    response = post(admin_client, "snapshot_create", domain, {"name": name, "mode": "disk"})
    assert response.status_code == 400 and response.context["form"].errors["name"]
    assert not Operation.objects.exists()


def test_it_refuses_a_snapshot_name_the_vm_already_has_and_an_unknown_one(local_host, guests, scratch_pool,
                                                                          admin_client):
    guest = qcow2_guest(guests, scratch_pool)
    guest.snapshotCreateXML("<domainsnapshot><name>base</name></domainsnapshot>", 0)
    domain = cached(local_host, guest)
    domain_snapshots_store(domain_id=domain.pk, snapshots=read_tree(guest))
    response = post(admin_client, "snapshot_create", domain, {"name": "base", "mode": "disk"})
    assert "already has a snapshot named 'base'" in response.context["form"].errors["name"][0]
    for view in ["snapshot_revert", "snapshot_delete"]:
        response = post(admin_client, view, domain, {"name": "nope"})
        assert response.status_code == 400
        assert "has no snapshot named 'nope'" in response.context["form"].errors["name"][0]
        assert "has no snapshot named &#x27;nope&#x27;" in response.content.decode()  # shown, escaped
    assert not Operation.objects.exists()


def test_it_refuses_a_snapshot_while_the_vm_is_busy(local_host, guests, scratch_pool, admin_client):
    domain = cached(local_host, qcow2_guest(guests, scratch_pool))
    with transaction.atomic():  # the first stays pending: its task is only queued on commit
        first = snapshots.snapshot_create(domain=domain, user=None, name="first", with_memory=False)
        response = post(admin_client, "snapshot_create", domain, {"name": "second", "mode": "disk"})
        assert response.status_code == 409
        assert f"busy: domain.snapshot_create #{first.pk} is pending" in response.content.decode()
        response = admin_client.post(reverse("domains:snapshot_refresh", args=[domain.pk]), follow=True)
        assert "busy: domain.snapshot_create" in response.content.decode()
        assert Operation.objects.count() == 1
        transaction.set_rollback(True)


def test_snapshot_pages_need_the_change_permission_and_post(local_host, guests, client, django_user_model,
                                                            admin_client):
    domain = cached(local_host, guests.define(LOCAL))
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-123")
    Grant.objects.create(user=viewer, host=local_host, role=Role.VIEWER)
    client.force_login(viewer)
    assert post(client, "snapshot_create", domain, {"name": "s1", "mode": "disk"}).status_code == 403
    assert client.post(reverse("domains:snapshot_refresh", args=[domain.pk])).status_code == 403
    assert admin_client.get(reverse("domains:snapshot_refresh", args=[domain.pk])).status_code == 405
    assert not Operation.objects.exists()
