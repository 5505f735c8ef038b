"""Bad input on every storage form: refused with a clear message, and nothing queued."""
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from hosts.models import Host
from operations.models import Operation
from storage.forms import PoolDefineForm, UploadForm, VolumeCreateForm, VolumeResizeForm
from storage.models import StoragePool, Volume

pytestmark = pytest.mark.django_db

GIB = 1024**3


@pytest.fixture
def pool() -> StoragePool:
    host = Host.objects.create(name="forms-host", transport="test", address="")
    return StoragePool.objects.create(host=host, uuid=uuid.uuid4(), name="images", pool_type="dir", active=True,
                                      target_path="/var/lib/libvirt/images", capacity=100 * GIB,
                                      allocation=90 * GIB, available=10 * GIB, synced_at=timezone.now())


@pytest.fixture
def volume(pool) -> Volume:
    return Volume.objects.create(host=pool.host, pool=pool, key="/var/lib/libvirt/images/taken.qcow2",
                                 name="taken.qcow2", path="/var/lib/libvirt/images/taken.qcow2", format="qcow2",
                                 capacity=GIB, allocation=GIB // 4, synced_at=timezone.now())


def create_form(pool, **overrides) -> VolumeCreateForm:
    data = {"name": "disk.qcow2", "format": "qcow2", "capacity_0": "1", "capacity_1": "GiB", **overrides}
    return VolumeCreateForm(data, pool=pool)


@pytest.mark.parametrize(("name", "message"), [
    ("a/b", "cannot contain '/'"),
    ("..", "cannot contain '/' or be '.' or '..'"),
    ("../etc", "cannot contain '/'"),
    ("bad\x00name", "Null characters are not allowed"),
    (" lead.qcow2", "start or end with a space"),
    ("trail.qcow2 ", "start or end with a space"),
    ("x" * 300, "at most 128 characters (this one has 300)"),
    ("", "This field is required"),
    ("a b", "letters, digits"),
])
def test_it_refuses_bad_volume_names(pool, volume, name, message):
    form = create_form(pool, name=name)
    assert not form.is_valid()
    assert message in " ".join(form.errors["name"])


def test_it_refuses_a_volume_name_already_in_the_pool(pool, volume):
    form = create_form(pool, name="taken.qcow2")
    assert not form.is_valid()
    assert form.errors["name"] == ["The pool images already has a volume named 'taken.qcow2'."]


@pytest.mark.parametrize(("amount", "unit", "message"), [
    ("0", "GiB", "The capacity must be more than 0."),
    ("-5", "GiB", "The capacity must be more than 0."),
    ("11", "GiB", "The capacity (11.00 GiB) is larger than the pool's free space (10.00 GiB)."),
    ("1", "TiB", "larger than the pool's free space"),
])
def test_it_refuses_capacities_that_cannot_be_made(pool, amount, unit, message):
    form = create_form(pool, capacity_0=amount, capacity_1=unit)
    assert not form.is_valid()
    assert message in " ".join(form.errors["capacity"])


@pytest.mark.parametrize(("amount", "allocation"), [("", None), ("0", 0), ("0.5", GIB // 2)])
def test_it_takes_an_empty_or_zero_allocation_as_a_thin_volume(pool, amount, allocation):
    form = create_form(pool, allocation_0=amount, allocation_1="GiB")
    assert form.is_valid(), form.errors
    assert form.arguments()["allocation"] == allocation


def test_it_refuses_a_negative_allocation(pool):
    form = create_form(pool, allocation_0="-1", allocation_1="GiB")
    assert not form.is_valid()
    assert form.errors["allocation"] == ["The allocation cannot be negative."]


def test_it_still_asks_for_a_capacity_when_only_its_unit_is_sent(pool):
    form = create_form(pool, capacity_0="", capacity_1="GiB")
    assert not form.is_valid() and form.errors["capacity"]


def test_it_refuses_a_backing_volume_for_raw_and_a_capacity_below_the_backing(pool, volume):
    form = create_form(pool, format="raw", backing=str(volume.pk))
    assert not form.is_valid() and form.errors["backing"] == ["Only a qcow2 volume can have a backing volume."]
    form = create_form(pool, backing=str(volume.pk), capacity_0="512", capacity_1="MiB")
    assert not form.is_valid() and "at least its capacity" in form.errors["capacity"][0]


def test_it_refuses_to_create_in_an_inactive_pool(pool):
    pool.active = False
    form = create_form(pool)
    assert not form.is_valid() and "is not active" in form.non_field_errors()[0]


def test_the_create_page_keeps_what_was_typed_and_queues_nothing(admin_client, pool):
    response = admin_client.post(reverse("storage:volume_create", args=[pool.pk]),
                                 {"name": "../../etc/passwd", "format": "raw", "capacity_0": "0", "capacity_1": "GiB"})
    assert response.status_code == 400
    assert b'value="../../etc/passwd"' in response.content
    assert b"cannot contain" in response.content and b"must be more than 0" in response.content
    assert not Operation.objects.exists()


def test_it_refuses_shrinking_unless_asked_and_never_for_qcow2(pool, volume):
    form = VolumeResizeForm({"capacity_0": "512", "capacity_1": "MiB"}, volume=volume)
    assert not form.is_valid() and "cannot be shrunk" in form.errors["capacity"][0]
    volume.format = "raw"
    form = VolumeResizeForm({"capacity_0": "512", "capacity_1": "MiB"}, volume=volume)
    assert not form.is_valid() and "tick this" in form.errors["shrink"][0]
    form = VolumeResizeForm({"capacity_0": "512", "capacity_1": "MiB", "shrink": "on"}, volume=volume)
    assert form.is_valid(), form.errors
    form = VolumeResizeForm({"capacity_0": "0", "capacity_1": "MiB"}, volume=volume)
    assert not form.is_valid() and form.errors["capacity"] == ["The capacity must be more than 0."]


def pool_form(pool_type: str, **data) -> PoolDefineForm:
    host = Host.objects.get(name="forms-host")
    return PoolDefineForm({"name": "new-pool", "start": "on", **data}, host=host, pool_type=pool_type)


@pytest.mark.parametrize(("path", "message"), [
    ("relative/images", "Enter an absolute path"),
    ("images", "Enter an absolute path"),
    ("/var/lib/../../etc", "without '..'"),
    ("/var/lib//images", "without '..'"),
    ("/var/lib/images/", "without '..'"),
    ("/var/\x00lib", "Null characters are not allowed"),
])
def test_it_refuses_pool_target_paths_that_are_relative_or_not_plain(pool, path, message):
    form = pool_form("dir", target_path=path)
    assert not form.is_valid()
    assert message in form.errors["target_path"][0]


@pytest.mark.parametrize(("pool_type", "fields"), [
    ("dir", {"target_path": "/var/lib/a\x01b"}),
    ("dir", {"target_path": "/var/lib/a\u2028b"}),
    ("netfs", {"source_host": "nfs.example.org", "source_dir": "/export/\ufffe", "target_path": "/mnt/nfs"}),
    ("fs", {"source_device": "/dev/sdb", "fs_format": "ext4", "target_path": "/mnt/\x1b[31m"}),
])
def test_it_refuses_pool_paths_with_control_characters(admin_client, pool, pool_type, fields):
    response = admin_client.post(reverse("storage:define_type", args=[pool.host.pk, pool_type]),
                                 {"name": "new-pool", "start": "on", **fields})
    assert response.status_code == 400
    assert b"cannot hold control or invisible characters" in response.content
    assert not Operation.objects.exists()


@pytest.mark.parametrize("server", [
    "nfs://server/export", "server;rm -rf /", "server && reboot", "$(reboot)", "`id`", "server/export",
    "server?command=x", "-oProxyCommand=x", "server name", "server|cat",
])
def test_it_refuses_nfs_host_names_with_uri_or_shell_metacharacters(pool, server):
    form = pool_form("netfs", source_host=server, source_dir="/export", target_path="/mnt/nfs")
    assert not form.is_valid()
    assert "Not a valid host name" in form.errors["source_host"][0]


def test_it_accepts_a_well_formed_nfs_pool_and_asks_only_what_the_type_needs(pool):
    form = pool_form("netfs", source_host="nfs.example.org", source_dir="/export/vms", target_path="/mnt/vms")
    assert form.is_valid(), form.errors
    assert set(form.fields) == {"name", "source_host", "source_dir", "target_path", "build", "start", "autostart"}
    assert "target_path" not in pool_form("logical").fields


def test_it_refuses_bad_iscsi_names_devices_and_a_taken_pool_name(pool):
    form = pool_form("iscsi", source_host="10.0.0.5", target_iqn="not an iqn")
    assert not form.is_valid() and "Not an iSCSI name" in form.errors["target_iqn"][0]
    form = pool_form("disk", source_device="/etc/passwd", disk_format="gpt")
    assert not form.is_valid() and "under /dev" in form.errors["source_device"][0]
    form = pool_form("logical", vg_name="vg0", build="on")
    assert not form.is_valid() and "Name the devices" in form.errors["source_devices"][0]
    form = PoolDefineForm({"name": "images", "target_path": "/srv"}, host=pool.host, pool_type="dir")
    assert not form.is_valid() and "already has a storage pool named 'images'" in form.errors["name"][0]


def test_the_define_page_builds_dir_and_netfs_pools_by_default_and_nothing_that_formats(admin_client, pool):
    def build_box(pool_type: str) -> str:
        page = admin_client.get(reverse("storage:define_type", args=[pool.host.pk, pool_type])).content.decode()
        return page.split('name="build"')[0].rsplit("<input", 1)[1] + page.split('name="build"')[1].split(">")[0]

    assert "checked" in build_box("dir") and "checked" in build_box("netfs")
    assert "checked" not in build_box("logical") and "checked" not in build_box("disk")


def test_the_define_page_keeps_what_was_typed_and_queues_nothing(admin_client, pool):
    response = admin_client.post(reverse("storage:define_type", args=[pool.host.pk, "netfs"]),
                                 {"name": "nfs1", "source_host": "srv;reboot", "source_dir": "export",
                                  "target_path": "/mnt/x"})
    assert response.status_code == 400
    assert b'value="srv;reboot"' in response.content and b"Not a valid host name" in response.content
    assert b"Enter an absolute path" in response.content
    assert not Operation.objects.exists()


def test_upload_form_refuses_empty_files_too_large_files_and_taken_names(pool, volume):
    def errors(**data):
        form = UploadForm(data, pool=pool)
        assert not form.is_valid()
        return " ".join(message for messages in form.errors.values() for message in messages)

    assert "The file is empty" in errors(name="new.img", size="0")
    assert "larger than the pool's free space" in errors(name="new.img", size=str(11 * GIB))
    assert "already has a volume named" in errors(name="taken.qcow2", size="10")
    assert "cannot contain '/'" in errors(name="../x", size="10")
    assert "is larger than taken.qcow2" in errors(volume=str(volume.pk), size=str(2 * GIB))
    assert "not both" in errors(volume=str(volume.pk), name="other.img", size="10")
    assert UploadForm({"name": "new.img", "size": "10"}, pool=pool).is_valid()


def test_an_api_body_that_leaves_build_out_builds_only_folder_pools():
    from storage.forms import pool_define_defaults

    assert pool_define_defaults("dir", {"name": "a"})["build"] is True
    assert pool_define_defaults("netfs", {})["build"] is True
    assert pool_define_defaults("dir", {"build": False})["build"] is False
    assert pool_define_defaults("logical", {})["build"] is False and pool_define_defaults("disk", {})["build"] is False
