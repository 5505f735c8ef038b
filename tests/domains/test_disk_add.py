"""Add disk (issue 16): the volumes the user may attach offered in a list, and a new volume made and
attached in one operation; bad input refused with a clear message, before anything is queued."""
from __future__ import annotations

import libvirt
import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from operations.choices import OperationState
from operations.models import Operation
from domains.models import Domain
from inventory.reconcile import host_reconcile
from storage.models import StoragePool, Volume, VolumeRecord
from tests.domains.helpers import cached
from tests.domains.test_config import CONFIG, define_guest, refused, submit, succeeded, xml_of
from tests.security.test_volumes import stub, user_with  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
MIB = 1024**2


@pytest.fixture
def vm(local_host, guests, scratch_pool):
    guest = define_guest(guests)
    host_reconcile(host=local_host)  # the scratch pool and its volumes become choices
    return guest, cached(local_host, guest)


def new_disk(pool: str, name: str, amount: str = "64", unit: str = "MiB", fmt: str = "qcow2") -> dict:
    return {"source": "new", "pool": pool, "new_name": name, "new_size_0": amount, "new_size_1": unit,
            "new_format": fmt, "bus": "virtio", "persistent": "on"}


def test_it_offers_the_volumes_in_a_list_and_attaches_the_one_picked(celery_worker, vm, scratch_pool, admin_client):
    guest, domain = vm
    scratch_pool.create_volume("data.qcow2")
    host_reconcile(host=domain.host)
    page = admin_client.get(reverse("domains:config_disk_attach", args=[domain.pk])).content.decode()
    assert f'<option value="{scratch_pool.name}/data.qcow2"' in page
    assert 'name="new_name"' in page and 'name="new_size_0"' in page
    operation = succeeded(submit(admin_client, "domains:config_disk_attach", domain,
                                 {"source": "existing", "volume": f"{scratch_pool.name}/data.qcow2", "pool": "",
                                  "bus": "virtio", "persistent": "on"}))
    assert operation.message == (f"Attached {scratch_pool.name}/data.qcow2 as vda (virtio), persistently "
                                 "(from the next start)")


def test_it_makes_a_new_volume_and_attaches_it_in_one_operation(celery_worker, vm, scratch_pool, admin_client):
    guest, domain = vm
    operation = succeeded(submit(admin_client, "domains:config_disk_attach", domain,
                                 new_disk(scratch_pool.name, "extra.qcow2", "1", "GiB")))
    assert operation.message == (f"Created extra.qcow2 (qcow2); attached {scratch_pool.name}/extra.qcow2 as vda "
                                 "(virtio), persistently (from the next start)")
    made = scratch_pool.pool.storageVolLookupByName("extra.qcow2")
    assert made.info()[1] == 1024**3
    disk = xml_of(guest, CONFIG).find(f"devices/disk/source[@file='{made.path()}']/..")
    assert disk.find("driver").get("type") == "qcow2"
    record = VolumeRecord.objects.get(host=domain.host, key=made.key())
    assert (record.format, record.owner_uuid) == ("qcow2", domain.uuid)  # the VM's own: it goes with the VM
    assert Volume.objects.filter(pool__name=scratch_pool.name, name="extra.qcow2").exists()  # the list shows it now


def test_it_removes_the_new_volume_when_the_attach_fails(celery_worker, vm, scratch_pool, admin_client):
    guest, domain = vm
    scratch_pool.create_volume("taken.qcow2")  # on the host, not yet in vmsite's list: the worker finds it
    before = guest.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    operation = submit(admin_client, "domains:config_disk_attach", domain, new_disk(scratch_pool.name, "taken.qcow2"))
    assert operation.state == OperationState.FAILED
    assert operation.error == f"The pool {scratch_pool.name!r} already has a volume named 'taken.qcow2'."
    scratch_pool.pool.storageVolLookupByName("taken.qcow2")  # the volume that was there is kept
    assert guest.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before



def test_it_removes_the_new_volume_when_the_attach_fails_after_it_was_made(celery_worker, local_host, guests,
                                                                           scratch_pool, admin_client):
    guest = define_guest(guests, start=True)
    host_reconcile(host=local_host)
    domain = cached(local_host, guest)  # running, as vmsite last saw it
    guest.destroy()  # and off on the host before the worker acts: a live attach fails
    operation = submit(admin_client, "domains:config_disk_attach", domain,
                       {**new_disk(scratch_pool.name, "late.qcow2"), "persistent": "", "live": "on"})
    assert operation.state == OperationState.FAILED
    assert "late.qcow2" not in scratch_pool.pool.listVolumes()  # nothing half-made is left behind
    assert not VolumeRecord.objects.filter(key__endswith="/late.qcow2").exists()
    assert "not running" in operation.error


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"new_size_0": "0"}, "new_size", "A new volume needs at least 1 MiB."),
    ({"new_size_0": ""}, "new_size", "Give the new volume's size, like 10 GiB."),
    ({"new_size_0": "-5"}, "new_size", "A new volume needs at least 1 MiB."),
    ({"new_name": ""}, "new_name", "Give the new volume a name."),
    ({"new_name": "../x.qcow2"}, "new_name",
     "Paths typed by hand are not accepted: pick a pool and give the volume's name in it."),
    ({"new_name": "a b"}, "new_name", "Give a volume's name in the pool (letters, digits, '.', '_', '+' or '-'), "
                                      "not a path."),
    ({"pool": ""}, "pool", "Pick the pool to make the new volume in."),
    ({"pool": "nowhere"}, "pool", "nowhere is not a pool offered for this VM: a VM's own operators may make new "
                                  "disks only in a pool that holds one of its own volumes, host operators in any "
                                  "active pool of its host."),
])
def test_it_refuses_a_bad_new_volume(vm, scratch_pool, admin_client, data, field, message):
    _guest, domain = vm
    errors = refused(admin_client, "domains:config_disk_attach", domain,
                     {**new_disk(scratch_pool.name, "new.qcow2"), **data})
    assert errors[field] == [message]


def test_it_refuses_a_name_taken_a_full_pool_and_a_volume_in_use_and_keeps_what_was_typed(vm, scratch_pool,
                                                                                         admin_client):
    _guest, domain = vm
    scratch_pool.create_volume("there.qcow2")
    host_reconcile(host=domain.host)
    errors = refused(admin_client, "domains:config_disk_attach", domain, new_disk(scratch_pool.name, "there.qcow2"))
    assert errors["new_name"] == [f"The pool {scratch_pool.name} already has a volume named 'there.qcow2': choose "
                                  "another name, or attach that volume."]

    pool = StoragePool.objects.get(host=domain.host, name=scratch_pool.name)
    StoragePool.objects.filter(pk=pool.pk).update(available=64 * MIB, capacity=128 * MIB)
    response = admin_client.post(reverse("domains:config_disk_attach", args=[domain.pk]),
                                 new_disk(scratch_pool.name, "big.img", "100", "MiB", "raw"))
    assert response.status_code == 400 and not Operation.objects.exists()
    assert response.context["form"].errors["new_size"] == [
        f"The pool {scratch_pool.name} has 64 MiB free: a raw volume of 100 MiB does not fit. Choose a smaller "
        "size, or qcow2 (thin)."]
    page = response.content.decode()
    assert 'value="big.img"' in page and 'name="new_size_0"' in page and 'value="100"' in page  # nothing lost
    errors = refused(admin_client, "domains:config_disk_attach", domain,
                     new_disk(scratch_pool.name, "huge.qcow2", "1", "GiB"))
    assert errors["new_size"] == [f"1.0 GiB is more than the whole pool {scratch_pool.name} (128 MiB)."]
    StoragePool.objects.filter(pk=pool.pk).update(available=0)
    errors = refused(admin_client, "domains:config_disk_attach", domain, new_disk(scratch_pool.name, "x.qcow2"))
    assert errors["new_size"] == [f"The pool {scratch_pool.name} is full (0 B free): free space in it, or "
                                  "choose another pool."]


def test_it_refuses_a_volume_in_use_picked_from_the_list(stub, admin_client):
    response = admin_client.post(reverse("domains:config_disk_attach", args=[stub["mine"].pk]),
                                 {"volume": "p/boot.img", "bus": "virtio", "persistent": "on"})
    assert response.status_code == 400
    assert response.context["form"].errors["volume"] == [
        "p/boot.img is in use by theirs: a volume is on one VM at a time unless an administrator marks it shareable."]
    page = admin_client.get(reverse("domains:config_disk_attach", args=[stub["mine"].pk])).content.decode()
    assert '<option value="p/own.img"' in page and '<option value="p/boot.img"' not in page  # not offered


def test_it_lets_a_vm_operator_make_a_new_disk_only_where_its_own_volumes_are(stub):
    _user, vm_operator = user_with(Role.OPERATOR, domain=stub["mine"])
    other = StoragePool.objects.create(host=stub["host"], uuid="00000000-0000-0000-0000-0000000000aa", name="q",
                                       pool_type="dir", target_path="/q", active=True, synced_at=stub["pool"].synced_at,
                                       capacity=10 * 1024**3, available=10 * 1024**3)
    StoragePool.objects.filter(pk=stub["pool"].pk).update(capacity=10 * 1024**3, available=10 * 1024**3)
    url = reverse("domains:config_disk_attach", args=[stub["mine"].pk])
    response = vm_operator.post(url, new_disk(other.name, "mine-2.qcow2"))
    assert response.status_code == 400
    assert response.context["form"].errors["pool"][0].startswith(  # as for a pool the host does not have
        "q is not a pool offered for this VM: a VM's own operators may make new disks only in a pool that holds "
        "one of its own volumes")
    assert not Operation.objects.exists()
    assert vm_operator.post(url, new_disk("p", "mine-2.qcow2")).status_code == 302  # p holds own.img
    operation = Operation.objects.get()
    assert operation.arguments["new"] == {"capacity": 64 * MIB, "format": "qcow2"}
    assert operation.arguments["volume"] == "mine-2.qcow2" and operation.arguments["pool"] == "p"

    _viewer, viewer = user_with(Role.VIEWER, host=stub["host"])
    assert viewer.post(url, new_disk("p", "v.qcow2")).status_code == 403
    _stranger, stranger = user_with(Role.OPERATOR, domain=stub["theirs"])
    assert stranger.post(url, new_disk("p", "s.qcow2")).status_code == 404
    _host_operator, host_operator = user_with(Role.OPERATOR, host=stub["host"])
    Operation.objects.update(state=OperationState.SUCCEEDED, finished_at=timezone.now())  # one at a time per VM
    assert host_operator.post(url, new_disk(other.name, "h.qcow2")).status_code == 302
    assert Operation.objects.count() == 2


def test_the_media_form_offers_a_list_too(stub, admin_client):
    Domain.objects.filter(pk=stub["mine"].pk).update(
        details={"disks": [{"target": "hdc", "device": "cdrom", "source": ""}]}, persistent=True)
    url = reverse("domains:config_media", args=[stub["mine"].pk])
    page = admin_client.get(url).content.decode()
    assert '<option value="p/own.img"' in page and '<option value="p/boot.img"' not in page
    assert 'type="text" name="volume"' not in page  # no name typed by hand
    response = admin_client.post(url, {"target": "hdc", "volume": "p/boot.img", "persistent": "on"})
    assert response.status_code == 400
    assert response.context["form"].errors["volume"] == [
        "p/boot.img is in use by theirs: a volume is on one VM at a time unless an administrator marks it shareable."]
    response = admin_client.post(url, {"target": "hdc", "volume": "../../etc/passwd", "persistent": "on"})
    assert response.context["form"].errors["volume"] == [
        "Paths typed by hand are not accepted: pick a pool and give the volume's name in it."]
    assert not Operation.objects.exists()
    assert admin_client.post(url, {"target": "hdc", "volume": "p/own.img", "persistent": "on"}).status_code == 302
    arguments = Operation.objects.get().arguments
    assert (arguments["pool"], arguments["volume"], arguments["target"]) == ("p", "own.img", "hdc")


def test_it_refuses_an_image_format_in_a_pool_of_logical_volumes(stub, admin_client):
    StoragePool.objects.create(host=stub["host"], uuid="00000000-0000-0000-0000-0000000000bb", name="vg",
                               pool_type="logical", target_path="/dev/vg", active=True, synced_at=stub["pool"].synced_at,
                               capacity=10 * 1024**3, available=10 * 1024**3)
    url = reverse("domains:config_disk_attach", args=[stub["mine"].pk])
    response = admin_client.post(url, new_disk("vg", "lv1"))
    assert response.status_code == 400
    assert response.context["form"].errors["new_format"] == [
        "The pool vg holds logical volumes or partitions, not image files: choose raw."]
    assert admin_client.post(url, new_disk("vg", "lv1", fmt="raw")).status_code == 302
