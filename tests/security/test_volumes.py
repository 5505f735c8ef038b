"""Volumes (issue 14, rows 2, 3 and 6): formats are never probed and images that reach outside their
pool are refused; volumes have owners, and attaching, deleting and downloading follow them.

Images are made by qemu-img in real dir pools of the main libvirtd, and changes run through the
pages, a real worker and libvirt."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from contextlib import contextmanager

import libvirt
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from lxml import etree

from accounts.models import Grant, Role
from domains.models import Domain
from hosts.models import Host
from hosts.services import host_register_local
from inventory.reconcile import host_reconcile
from operations.choices import OperationState
from operations.models import Operation
from storage.models import StoragePool, Volume, VolumeRecord
from storage.records import records_follow_vm, volume_record_made
from storage.uploads import UploadSession, claim_upload, upload_begin
from tests import stack
from tests.api.conftest import token_client
from tests.domains.helpers import LOCAL, cached
from tests.domains.test_config import define_guest, submit, succeeded, xml_of
from tests.domains.test_create import SSH_KEY, valid_data
from tests.guests import TEST_GUEST_PREFIX
from virt.images import references

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG


@pytest.fixture
def local_host(local_libvirt, scratch_pool) -> Host:
    host, _ = host_register_local()
    host_reconcile(host=host, fresh=True)  # capabilities and the scratch pool, as the wizard needs them
    host.refresh_from_db()
    return host


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def made_outside(scratch_pool, local_host, name: str, *args: str) -> str:
    """An image made by qemu-img in the pool's folder (as a host's user or a guest would), then seen."""
    path = os.path.join(scratch_pool.pool.XMLDesc(0).split("<path>")[1].split("</path>")[0], name)
    qemu_img("create", "-q", *args, path, "16M")
    scratch_pool.pool.refresh(0)
    host_reconcile(host=local_host)
    return path


def user_with(role: str, **where):
    user = get_user_model().objects.create_user(f"u-{uuid.uuid4().hex[:8]}", password="x")
    Grant.objects.create(user=user, role=role, **where)
    client = Client()
    client.force_login(user)
    return user, client


def disk_sources(guest: libvirt.virDomain) -> list[str]:
    return [source.get("file") for source in xml_of(guest, CONFIG).findall("devices/disk/source")]


# ---------------------------------------------------------------------------------------------
# Row 2: the recorded format, and images that reach outside their pool


def test_it_attaches_a_raw_volume_whose_guest_wrote_a_qcow2_header_as_raw(celery_worker, local_host, guests,
                                                                          admin_client, scratch_pool):
    path = scratch_pool.create_volume("tenant.img", fmt="raw").path()
    host_reconcile(host=local_host)  # vmsite sees it first as raw: that is its record
    qemu_img("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", path, "16M")  # the guest's doing
    scratch_pool.pool.refresh(0)
    host_reconcile(host=local_host)
    row = Volume.objects.select_related("record").get(host=local_host, key=path)
    assert (row.format, row.recorded_format) == ("qcow2", "raw")  # libvirt now probes qcow2; vmsite keeps raw

    guest = define_guest(guests)
    domain = cached(local_host, guest)
    succeeded(submit(admin_client, "domains:config_disk_attach", domain,
                     {"pool": scratch_pool.name, "volume": "tenant.img", "bus": "virtio", "persistent": "on"}))
    disk = xml_of(guest, CONFIG).find(f"devices/disk/source[@file='{path}']/..")
    assert disk.find("driver").get("type") == "raw"
    assert "/etc/passwd" not in guest.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def test_it_refuses_to_attach_a_qcow2_whose_backing_file_is_outside_its_pool(celery_worker, local_host, guests,
                                                                             admin_client, scratch_pool):
    made_outside(scratch_pool, local_host, "chained.qcow2", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw")
    guest = define_guest(guests)
    domain = cached(local_host, guest)
    operation = submit(admin_client, "domains:config_disk_attach", domain,
                       {"pool": scratch_pool.name, "volume": "chained.qcow2", "bus": "virtio", "persistent": "on"})
    assert operation.state == OperationState.FAILED
    assert "needs backing file '/etc/passwd', outside its storage pool" in operation.error
    assert disk_sources(guest) == []


def test_it_refuses_to_insert_a_qcow2_with_an_external_data_file_outside_its_pool(celery_worker, local_host, guests,
                                                                                  admin_client, scratch_pool,
                                                                                  tmp_path):
    data_file = tmp_path / "elsewhere.raw"
    made_outside(scratch_pool, local_host, "split.qcow2", "-f", "qcow2", "-o", f"data_file={data_file}")
    guest = define_guest(guests, cdrom=True)
    domain = cached(local_host, guest)
    operation = submit(admin_client, "domains:config_media", domain,
                       {"target": "hdc", "pool": scratch_pool.name, "volume": "split.qcow2", "persistent": "on"})
    assert operation.state == OperationState.FAILED
    assert f"needs data file '{data_file}', outside its storage pool" in operation.error
    assert xml_of(guest, CONFIG).find("devices/disk[@device='cdrom']/source[@file]") is None  # still empty


def test_it_refuses_a_vmdk_whose_extent_is_outside_its_pool_as_the_wizards_existing_volume(
        celery_worker, local_host, guests, admin_client, scratch_pool):
    folder = scratch_pool.pool.XMLDesc(0).split("<path>")[1].split("</path>")[0]
    with open(os.path.join(folder, "reach.vmdk"), "w") as descriptor:
        descriptor.write('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
                         'createType="monolithicFlat"\nRW 2048 FLAT "/etc/passwd" 0\n')
    scratch_pool.pool.refresh(0)
    host_reconcile(host=local_host)
    VolumeRecord.objects.filter(host=local_host, key=os.path.join(folder, "reach.vmdk")).update(format="vmdk")
    name = f"{TEST_GUEST_PREFIX}{uuid.uuid4().hex[:8]}"
    guests.created.append((LOCAL, name))
    response = admin_client.post(reverse("domains:create", args=[local_host.pk]), valid_data(
        local_host, scratch_pool, name, disk_source="existing", disk_volume="reach.vmdk", start_now=None))
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    operation = Operation.objects.filter(kind="domain.create").latest("pk")
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=60, message="create")
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    assert "needs extent '/etc/passwd', outside its storage pool" in operation.error
    with pytest.raises(libvirt.libvirtError):
        libvirt.open(LOCAL).lookupByName(name)


def test_it_refuses_to_clone_a_vm_whose_disk_has_a_backing_file_outside_its_pool(celery_worker, local_host, guests,
                                                                                 admin_client, scratch_pool):
    path = made_outside(scratch_pool, local_host, "base.qcow2", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw")
    guest = guests.define(LOCAL, disk_path=path)
    domain = cached(local_host, guest)
    copy_name = f"{TEST_GUEST_PREFIX}{uuid.uuid4().hex[:8]}"
    guests.created.append((LOCAL, copy_name))
    operation = submit(admin_client, "domains:clone", domain, {"name": copy_name})
    assert operation.state == OperationState.FAILED
    assert "needs backing file '/etc/passwd', outside its storage pool" in operation.error
    assert scratch_pool.pool.listVolumes() == ["base.qcow2"]


def test_it_refuses_to_copy_a_volume_that_libvirt_would_read_in_another_format(celery_worker, local_host,
                                                                              admin_client, scratch_pool):
    """libvirt copies a volume reading it in the format it probes: a raw volume whose contents became
    a qcow2 image with a backing file would be copied with /etc/passwd's bytes in it."""
    path = scratch_pool.create_volume("tenant.img", fmt="raw").path()
    host_reconcile(host=local_host)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", path, "16M")
    scratch_pool.pool.refresh(0)
    host_reconcile(host=local_host)
    volume = Volume.objects.get(host=local_host, key=path)
    admin_client.post(reverse("storage:volume_clone", args=[volume.pk]), {"name": "tenant-copy.img"})
    operation = Operation.objects.filter(kind="volume.clone").latest("pk")
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=60, message="clone")
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    assert "was recorded as a raw volume, but its contents now read as qcow2" in operation.error
    assert sorted(scratch_pool.pool.listVolumes()) == ["tenant.img"]


def test_it_refuses_an_upload_whose_declared_format_names_a_backing_file_outside_its_pool(
        local_host, scratch_pool, tmp_path, django_user_model):
    image = tmp_path / "upload.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(image), "16M")
    host_reconcile(host=local_host)
    pool = StoragePool.objects.get(host=local_host, name=scratch_pool.name)
    admin = django_user_model.objects.create_superuser("uploader", password="x")
    data = image.read_bytes()

    def upload(name: str, fmt: str) -> Operation:
        operation = claim_upload(upload_begin(pool=pool, volume=None, name=name, size=len(data), user=admin,
                                              fmt=fmt).pk, admin)
        session = UploadSession(operation)
        session.open()
        session.write(data)
        try:
            session.finish()
        except Exception as exc:  # what the upload socket does with a failed end
            session.abort(f"Upload failed at the end: {exc}")
        operation.refresh_from_db()
        return operation

    refused = upload("chained.qcow2", "qcow2")
    assert refused.state == OperationState.FAILED
    assert "needs backing file '/etc/passwd', outside its storage pool" in refused.error
    assert "The new volume was removed." in refused.error
    assert "chained.qcow2" not in scratch_pool.pool.listVolumes()

    kept = upload("as-raw.img", "raw")  # the same bytes declared raw: a raw image names no file
    assert kept.state == OperationState.SUCCEEDED, kept.error
    row = Volume.objects.select_related("record").get(pool=pool, name="as-raw.img")
    assert row.recorded_format == "raw" and row.format == "qcow2"  # libvirt's probe; never used


@pytest.mark.parametrize("fmt, options", [
    ("qcow2", ["-b", "/etc/passwd", "-F", "raw"]),
    ("qcow2", ["-b", "sibling.qcow2", "-F", "qcow2", "-u"]),
    ("qcow2", ["-o", "data_file={tmp}/elsewhere.raw"]),
    ("qcow2", []),
    ("vmdk", ["-o", "subformat=monolithicFlat"]),
    ("vmdk", ["-o", "subformat=twoGbMaxExtentSparse"]),
    ("vmdk", []),
    ("qed", ["-b", "/etc/passwd", "-F", "raw", "-u"]),
])
def test_it_reads_the_files_a_header_names_as_qemu_img_does(tmp_path, fmt, options):
    image = tmp_path / f"image.{fmt}"
    qemu_img("create", "-q", "-f", fmt, *(option.format(tmp=tmp_path) for option in options), str(image), "16M")
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "-f", fmt, "--output=json", str(image)],
                                     check=True, capture_output=True, text=True).stdout)
    expected = sorted(([info["backing-filename"]] if "backing-filename" in info else [])
                      + ([info["format-specific"]["data"]["data-file"]]
                         if "data-file" in info.get("format-specific", {}).get("data", {}) else [])
                      + [os.path.basename(extent["filename"]) if os.path.dirname(extent["filename"]) == str(tmp_path)
                         else extent["filename"]
                         for extent in info.get("format-specific", {}).get("data", {}).get("extents", [])])
    with open(image, "rb") as header:
        found = sorted(reference.name for reference in references(header.read(2 * 1024 * 1024), fmt))
    assert found == expected
    with open(image, "rb") as header:
        assert references(header.read(2 * 1024 * 1024), "raw") == []  # the same bytes, declared raw


# ---------------------------------------------------------------------------------------------
# Row 3: owners, gifts, shareable volumes, and deleting with a VM


@pytest.fixture
def stub(db):
    """A host (the test driver: nothing here reaches libvirt) with two VMs, a pool and volumes."""
    host = Host.objects.create(name=f"vols-{uuid.uuid4().hex[:6]}", transport="test", address="default")
    now = timezone.now()
    mine = Domain.objects.create(host=host, uuid=uuid.uuid4(), name="mine", synced_at=now)
    theirs = Domain.objects.create(host=host, uuid=uuid.uuid4(), name="theirs", synced_at=now,
                                   details={"disks": [{"target": "vda", "device": "disk", "source": "/p/boot.img"}]})
    pool = StoragePool.objects.create(host=host, uuid=uuid.uuid4(), name="p", pool_type="dir", target_path="/p",
                                      active=True, synced_at=now)
    volumes = {}
    for name, owner in (("own.img", mine), ("boot.img", theirs), ("loose.img", None)):
        record = volume_record_made(host=host, key=f"/p/{name}", format="raw",
                                    owner_uuid=owner.uuid if owner else None)
        volumes[name] = Volume.objects.create(host=host, pool=pool, key=f"/p/{name}", name=name, path=f"/p/{name}",
                                              format="raw", record=record, synced_at=now)
    return {"host": host, "mine": mine, "theirs": theirs, "pool": pool, **volumes}


def attach(client, domain: Domain, volume: str):
    return client.post(reverse("domains:config_disk_attach", args=[domain.pk]),
                       {"pool": "p", "volume": volume, "bus": "virtio", "persistent": "on"})


def test_it_lets_a_vm_operator_attach_only_its_vms_own_or_given_volumes(stub):
    _user, vm_operator = user_with(Role.OPERATOR, domain=stub["mine"])
    offers = vm_operator.get(reverse("domains:config_disk_attach", args=[stub["mine"].pk])).content.decode()
    assert "own.img" in offers and "boot.img" not in offers and "loose.img" not in offers  # not theirs to see
    for name in ("loose.img", "boot.img", "nothing-by-this-name.img"):
        response = attach(vm_operator, stub["mine"], name)
        assert response.status_code == 400
        assert f"p/{name} is not a volume of this VM" in str(response.context["form"].errors["volume"])
    assert not Operation.objects.exists()

    assert attach(vm_operator, stub["mine"], "own.img").status_code == 302
    _host_operator, by_host = user_with(Role.OPERATOR, host=stub["host"])
    by_host.post(reverse("storage:volume_give", args=[stub["loose.img"].pk]), {"domain": stub["mine"].pk})
    Operation.objects.all().delete()
    assert attach(vm_operator, stub["mine"], "loose.img").status_code == 302  # given by a host operator
    media = vm_operator.post(reverse("domains:config_media", args=[stub["mine"].pk]),
                             {"target": "hdc", "pool": "p", "volume": "boot.img", "persistent": "on"})
    assert "p/boot.img is not a volume of this VM" in media.content.decode()


def test_it_refuses_a_volume_another_vm_uses_to_everyone_until_an_administrator_marks_it_shareable(stub,
                                                                                                  admin_client):
    _user, host_operator = user_with(Role.OPERATOR, host=stub["host"])
    offers = host_operator.get(reverse("domains:config_disk_attach", args=[stub["mine"].pk])).content.decode()
    assert "not offered: p/boot.img is in use by theirs" in offers
    for client in (host_operator, admin_client):
        response = attach(client, stub["mine"], "boot.img")
        assert response.status_code == 400
        assert "p/boot.img is in use by theirs" in str(response.context["form"].errors["volume"])
    volume = stub["boot.img"]
    assert host_operator.post(reverse("storage:volume_shareable", args=[volume.pk]), {"shareable": "on"}
                              ).status_code == 403
    assert token_client(_user).post(reverse("api:volume_shareable", args=[volume.pk]), {"shareable": True},
                                    format="json").status_code == 403
    assert not VolumeRecord.objects.get(key="/p/boot.img", host=stub["host"]).shareable
    admin = get_user_model().objects.create_superuser(f"a-{uuid.uuid4().hex[:6]}", password="x")
    assert token_client(admin).post(reverse("api:volume_shareable", args=[volume.pk]), {"shareable": True},
                                    format="json").status_code == 200
    assert attach(host_operator, stub["mine"], "boot.img").status_code == 302


def test_it_lets_host_operators_give_volumes_and_not_viewers_or_vm_operators(stub):
    volume = stub["loose.img"]
    viewer, _client = user_with(Role.VIEWER, host=stub["host"])
    vm_operator, _client = user_with(Role.OPERATOR, domain=stub["mine"])
    stub_record = VolumeRecord.objects.get(host=stub["host"], key=volume.key)
    for user in (viewer, vm_operator):
        response = token_client(user).post(reverse("api:volume_give", args=[volume.pk]), {"domain": stub["mine"].pk},
                                           format="json")
        assert response.status_code in (403, 404)
    assert not stub_record.gifts.exists()
    host_operator, _client = user_with(Role.OPERATOR, host=stub["host"])
    response = token_client(host_operator).post(reverse("api:volume_give", args=[volume.pk]),
                                                {"domain": stub["mine"].pk}, format="json")
    assert response.status_code == 200, response.content
    assert list(stub_record.gifts.values_list("domain_uuid", flat=True)) == [stub["mine"].uuid]
    response = token_client(host_operator).post(reverse("api:volume_give", args=[volume.pk]),
                                                {"domain": stub["mine"].pk, "take_back": True}, format="json")
    assert response.status_code == 200 and not stub_record.gifts.exists()


def test_it_deletes_with_a_vm_only_the_volumes_it_owns_and_no_other_vm_uses(celery_worker, local_host, guests,
                                                                            admin_client, scratch_pool):
    own, shared, foreign = (scratch_pool.create_volume(name).path() for name in ("own.qcow2", "shared.qcow2",
                                                                                  "foreign.qcow2"))
    guest = guests.define(LOCAL, disk_path=own)
    root = etree.fromstring(guest.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    for target, path in (("vdb", shared), ("vdc", foreign)):
        disk = etree.SubElement(root.find("devices"), "disk", type="file", device="disk")
        etree.SubElement(disk, "driver", name="qemu", type="qcow2")
        etree.SubElement(disk, "source", file=path)
        etree.SubElement(disk, "target", dev=target, bus="virtio")
    guest = libvirt.open(LOCAL).defineXML(etree.tostring(root, encoding="unicode"))
    other = guests.define(LOCAL, disk_path=shared)
    for path in (own, shared):
        volume_record_made(host=local_host, key=path, format="qcow2", owner_uuid=guest.UUIDString())
    domain = cached(local_host, guest)
    admin_client.post(reverse("domains:delete", args=[domain.pk]), {"confirm_name": domain.name, "with_volumes": "on"})
    operation = Operation.objects.get(kind="domain.delete")
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=60, message="delete")
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED, operation.error
    assert sorted(scratch_pool.pool.listVolumes()) == ["foreign.qcow2", "shared.qcow2"]
    assert f"kept {shared}, {foreign}: not this VM's own volumes, or in use by another VM" in operation.message
    assert other.XMLDesc(0)


def test_it_records_the_new_vm_as_the_owner_of_what_the_wizard_makes(celery_worker, local_host, guests,
                                                                      admin_client, scratch_pool):
    name = f"{TEST_GUEST_PREFIX}{uuid.uuid4().hex[:8]}"
    guests.created.append((LOCAL, name))
    host_reconcile(host=local_host)
    response = admin_client.post(reverse("domains:create", args=[local_host.pk]), valid_data(
        local_host, scratch_pool, name, cloud_init="on", ci_ssh_keys=SSH_KEY, start_now=None))
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    operation = Operation.objects.filter(kind="domain.create").latest("pk")
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=90, message="create")
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED, operation.error
    vm_uuid = uuid.UUID(libvirt.open(LOCAL).lookupByName(name).UUIDString())
    records = {os.path.basename(record.key): record for record in VolumeRecord.objects.filter(owner_uuid=vm_uuid)}
    assert sorted(records) == [f"{name}-cidata.iso", f"{name}-disk0.qcow2"]
    assert records[f"{name}-disk0.qcow2"].format == "qcow2" and not records[f"{name}-disk0.qcow2"].cloud_init_seed
    assert records[f"{name}-cidata.iso"].format == "raw" and records[f"{name}-cidata.iso"].cloud_init_seed


# ---------------------------------------------------------------------------------------------
# Row 6: downloads


@contextmanager
def outside_any_event_loop():
    """The download view is async, and Django's test client runs it through async_to_sync, which
    refuses a thread where an event loop runs: the browser tests leave Playwright's running in the
    main thread of an xdist worker. The request runs as it would in a plain thread."""
    loop = asyncio._get_running_loop()
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(loop)


def test_it_lets_operators_download_volumes_and_only_administrators_cloud_init_seeds(local_host, guests,
                                                                                     scratch_pool):
    disk = scratch_pool.create_volume("disk.img", capacity_mib=1, fmt="raw")
    seed = scratch_pool.create_volume("vm-cidata.iso", capacity_mib=1, fmt="raw")
    owner = guests.define(LOCAL)
    stranger = guests.define(LOCAL)
    host_reconcile(host=local_host)
    volume_record_made(host=local_host, key=disk.key(), format="raw", owner_uuid=owner.UUIDString())
    volume_record_made(host=local_host, key=seed.key(), format="raw", owner_uuid=owner.UUIDString(),
                       cloud_init_seed=True)
    rows = {row.name: row for row in Volume.objects.filter(host=local_host, pool__name=scratch_pool.name)}
    owner_row = Domain.objects.get(host=local_host, uuid=owner.UUIDString())
    stranger_row = Domain.objects.get(host=local_host, uuid=stranger.UUIDString())
    users = {
        "host viewer": user_with(Role.VIEWER, host=local_host)[0],
        "host operator": user_with(Role.OPERATOR, host=local_host)[0],
        "owner's operator": user_with(Role.OPERATOR, domain=owner_row)[0],
        "owner's viewer": user_with(Role.VIEWER, domain=owner_row)[0],
        "another VM's operator": user_with(Role.OPERATOR, domain=stranger_row)[0],
        "admin": get_user_model().objects.create_superuser(f"a-{uuid.uuid4().hex[:6]}", password="x"),
    }
    expected = {  # (disk.img, vm-cidata.iso)
        "host viewer": (403, 403), "host operator": (200, 403), "owner's operator": (200, 403),
        "owner's viewer": (403, 403), "another VM's operator": (404, 404), "admin": (200, 200),
    }
    for label, user in users.items():
        session = Client()
        session.force_login(user)
        token = token_client(user)
        for volume, want in zip((rows["disk.img"], rows["vm-cidata.iso"]), expected[label]):
            url = reverse("storage:volume_download", args=[volume.pk])
            for how, client in (("session", session), ("token", token)):
                with outside_any_event_loop():
                    response = client.get(url)
                    response.close()
                assert response.status_code == want, f"{label} ({how}) downloading {volume.name}"
        page = session.get(reverse("storage:volume", args=[rows["vm-cidata.iso"].pk]))
        if page.status_code == 200 and label != "admin":
            assert "only administrators may download it" in page.content.decode()


def test_it_keeps_a_migrated_vms_volumes_its_own_on_the_destination(stub):
    destination = Host.objects.create(name=f"dest-{uuid.uuid4().hex[:6]}", transport="test", address="default")
    seen_there = VolumeRecord.objects.create(host=destination, key="/p/own.img", format="qcow2")  # probed there
    records_follow_vm(vm_uuid=stub["mine"].uuid, source=stub["host"], destination=destination)
    seen_there.refresh_from_db()
    assert (seen_there.owner_uuid, seen_there.format) == (stub["mine"].uuid, "raw")
    assert not VolumeRecord.objects.filter(host=destination, key="/p/boot.img").exists()  # another VM's


def test_a_new_disk_through_the_api_follows_the_same_rule_as_the_page(stub):
    """accounts.access.new_volume_refusal: a VM's own operator only where its own volumes are; viewers never."""
    StoragePool.objects.filter(pk=stub["pool"].pk).update(capacity=10 * 2**30, available=10 * 2**30)
    StoragePool.objects.create(host=stub["host"], uuid=uuid.uuid4(), name="q", pool_type="dir", target_path="/q",
                               active=True, synced_at=timezone.now(), capacity=10 * 2**30, available=10 * 2**30)
    url = reverse("api:vm_disks_add", args=[stub["mine"].pk])
    body = {"source": "new", "new_name": "api-disk.qcow2", "new_size": 1, "new_format": "qcow2", "bus": "virtio",
            "persistent": True}
    vm_operator, _client = user_with(Role.OPERATOR, domain=stub["mine"])
    response = token_client(vm_operator).post(url, {**body, "pool": "q"}, format="json")
    assert response.status_code == 400
    assert "may make new disks only in a pool that holds one of its own volumes" in response.json()["pool"][0]
    viewer, _client = user_with(Role.VIEWER, host=stub["host"])
    assert token_client(viewer).post(url, {**body, "pool": "p"}, format="json").status_code == 403
    stranger, _client = user_with(Role.OPERATOR, domain=stub["theirs"])
    assert token_client(stranger).post(url, {**body, "pool": "p"}, format="json").status_code == 404
    assert not Operation.objects.exists()
    response = token_client(vm_operator).post(url, {**body, "pool": "p", "new_size_unit": "MiB"}, format="json")
    assert response.status_code == 202, response.content
    assert Operation.objects.get().arguments["new"] == {"capacity": 2**20, "format": "qcow2"}


def test_a_vm_operator_is_offered_only_the_pools_its_new_disks_may_go_in(stub):
    """The Add disk page names no pool of the host beyond those the VM's user may use (accounts.access)."""
    StoragePool.objects.create(host=stub["host"], uuid=uuid.uuid4(), name="secret-backups", pool_type="dir",
                               target_path="/q", active=True, synced_at=timezone.now())
    url = reverse("domains:config_disk_attach", args=[stub["mine"].pk])
    _user, vm_operator = user_with(Role.OPERATOR, domain=stub["mine"])
    page = vm_operator.get(url).content.decode()
    assert '<option value="p"' in page and "secret-backups" not in page
    refused = vm_operator.post(url, {"source": "new", "pool": "secret-backups", "new_name": "x.qcow2",
                                     "new_size": "1", "new_size_unit": "GiB", "new_format": "qcow2", "bus": "virtio"})
    unknown = vm_operator.post(url, {"source": "new", "pool": "no-such-pool", "new_name": "x.qcow2",
                                     "new_size": "1", "new_size_unit": "GiB", "new_format": "qcow2", "bus": "virtio"})
    answers = [str(response.context["form"].errors["pool"]).replace(name, "NAME")
               for response, name in ((refused, "secret-backups"), (unknown, "no-such-pool"))]
    assert answers[0] == answers[1]  # an existing pool and a made-up name get the same answer
    media = [vm_operator.post(reverse("domains:config_media", args=[stub["mine"].pk]),
                              {"target": "hdc", "pool": name, "volume": "x.iso", "persistent": "on"})
             .context["form"].errors.get("pool", ["(none)"])[0].replace(name, "NAME")
             for name in ("secret-backups", "no-such-pool")]
    assert media == ["NAME is not the pool of a volume offered for this VM."] * 2
    _host_operator, by_host = user_with(Role.OPERATOR, host=stub["host"])
    assert '<option value="secret-backups"' in by_host.get(url).content.decode()
    assert not Operation.objects.exists()
