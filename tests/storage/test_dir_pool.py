"""A dir pool and its volumes through the pages, a real worker and the real libvirtd."""
import hashlib
import subprocess

import libvirt
import pytest
from django.urls import reverse

from inventory.reconcile import host_reconcile
from operations.choices import OperationState
from storage.models import StoragePool, Volume
from tests.domains.helpers import cached
from tests.guests import small_guest_xml
from tests.storage.conftest import LOCAL, PREFIX, finished, latest, qemu_img_info, volume_row

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MIB = 1024**2


def create_volume(client, pool: StoragePool, name: str, fmt: str, mib: int, **extra) -> Volume:
    response = client.post(reverse("storage:volume_create", args=[pool.pk]),
                           {"name": name, "format": fmt, "capacity_0": str(mib), "capacity_1": "MiB", **extra})
    assert response.status_code == 302, response.context["form"].errors
    operation = finished(latest("volume.create"))
    assert operation.state == OperationState.SUCCEEDED, operation.error
    return volume_row(pool, name)


def test_it_creates_qcow2_raw_and_vmdk_volumes_and_a_qcow2_on_a_backing_volume(celery_worker, admin_client,
                                                                               dir_pool):
    for name, fmt in (("a.qcow2", "qcow2"), ("b.img", "raw"), ("c.vmdk", "vmdk")):
        volume = create_volume(admin_client, dir_pool, name, fmt, 64)
        info = qemu_img_info(volume.path)
        assert (info["format"], info["virtual-size"]) == (fmt, 64 * MIB)
        assert (volume.format, volume.capacity) == (fmt, 64 * MIB)

    base = volume_row(dir_pool, "a.qcow2")
    overlay = create_volume(admin_client, dir_pool, "overlay.qcow2", "qcow2", 64, backing=str(base.pk))
    info = qemu_img_info(overlay.path)
    assert info["backing-filename"] == base.path and info["backing-filename-format"] == "qcow2"
    assert overlay.backing_path == base.path

    page = admin_client.get(reverse("storage:pool", args=[dir_pool.pk])).content.decode()
    for name in ("a.qcow2", "b.img", "c.vmdk", "overlay.qcow2"):
        assert f'data-volume="{name}"' in page
    assert "progress-bar" in page and "Available" in page


def test_it_allocates_a_raw_volume_when_asked(celery_worker, admin_client, dir_pool):
    volume = create_volume(admin_client, dir_pool, "full.img", "raw", 16, allocation_0="16", allocation_1="MiB")
    assert volume.allocation >= 16 * MIB


@pytest.mark.parametrize("amount", ["", "0"])
def test_it_makes_a_thin_volume_when_the_allocation_is_left_empty_or_0(celery_worker, admin_client, dir_pool, amount):
    # As the browser posts the form: the unit select always sends its value.
    volume = create_volume(admin_client, dir_pool, f"thin{amount}.img", "raw", 64, allocation_0=amount,
                           allocation_1="GiB")
    assert volume.capacity == 64 * MIB and volume.allocation < MIB


def test_it_clones_with_progress_resizes_and_wipes(celery_worker, admin_client, dir_pool):
    source = create_volume(admin_client, dir_pool, "src.qcow2", "qcow2", 256)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64M", source.path], check=True,
                   capture_output=True)
    response = admin_client.post(reverse("storage:volume_clone", args=[source.pk]), {"name": "copy.qcow2"})
    assert response.status_code == 302
    operation = latest("volume.clone")
    seen = []
    while not operation.is_finished:
        operation.refresh_from_db()
        seen.append(operation.progress)
    assert operation.state == OperationState.SUCCEEDED, operation.error
    assert operation.progress == 100 and seen
    copy = volume_row(dir_pool, "copy.qcow2")
    compare = subprocess.run(["qemu-img", "compare", "-U", source.path, copy.path], capture_output=True, text=True)
    assert compare.returncode == 0, compare.stdout + compare.stderr

    response = admin_client.post(reverse("storage:volume_resize", args=[copy.pk]),
                                 {"capacity_0": "512", "capacity_1": "MiB"})
    assert response.status_code == 302
    assert finished(latest("volume.resize")).state == OperationState.SUCCEEDED
    assert qemu_img_info(copy.path)["virtual-size"] == 512 * MIB
    assert volume_row(dir_pool, "copy.qcow2").capacity == 512 * MIB

    response = admin_client.post(reverse("storage:volume_resize", args=[copy.pk]),
                                 {"capacity_0": "128", "capacity_1": "MiB"})
    assert response.status_code == 400 and b"cannot be shrunk" in response.content

    raw = create_volume(admin_client, dir_pool, "raw.img", "raw", 64)
    response = admin_client.post(reverse("storage:volume_resize", args=[raw.pk]),
                                 {"capacity_0": "32", "capacity_1": "MiB", "shrink": "on"})
    assert response.status_code == 302
    assert finished(latest("volume.resize")).state == OperationState.SUCCEEDED
    assert qemu_img_info(raw.path)["virtual-size"] == 32 * MIB

    subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 1M", raw.path], check=True, capture_output=True)
    assert admin_client.post(reverse("storage:volume_action", args=[raw.pk, "wipe"])).status_code == 302
    assert finished(latest("volume.wipe")).state == OperationState.SUCCEEDED
    with open(raw.path, "rb") as image:
        assert image.read(MIB) == bytes(MIB)

    assert admin_client.post(reverse("storage:volume_action", args=[copy.pk, "checksum"])).status_code == 302
    checksum = finished(latest("volume.checksum"))
    with open(copy.path, "rb") as image:
        expected = hashlib.file_digest(image, "sha256").hexdigest()
    assert checksum.state == OperationState.SUCCEEDED and checksum.message == f"SHA-256 {expected}", checksum.error
    assert volume_row(dir_pool, "copy.qcow2").sha256 == expected


def test_it_refuses_to_delete_a_volume_in_use_unless_told_to_detach(celery_worker, admin_client, dir_pool,
                                                                     local_host, guests):
    volume = create_volume(admin_client, dir_pool, "used.qcow2", "qcow2", 16)
    name = f"{PREFIX}vm-{volume.pk}"
    guests.created.append((LOCAL, name))
    guest = libvirt.open(LOCAL).defineXML(small_guest_xml(name, disk_path=volume.path))
    domain = cached(local_host, guest)

    page = admin_client.get(reverse("storage:pool", args=[dir_pool.pk])).content.decode()
    assert name in page  # "used by"
    response = admin_client.post(reverse("storage:volume_delete", args=[volume.pk]), {"confirm_name": "used.qcow2"})
    assert response.status_code == 400 and f"in use by {name}" in response.content.decode()
    assert not latest_or_none("volume.delete")

    # Even if the page were bypassed, the worker checks libvirt itself and refuses.
    from storage.services import volume_action_enqueue
    operation = finished(volume_action_enqueue(volume=volume, action="delete", user=None, arguments={}))
    assert operation.state == OperationState.FAILED and f"in use by {name}" in operation.error
    assert libvirt.open(LOCAL).storageVolLookupByPath(volume.path)

    response = admin_client.post(reverse("storage:volume_delete", args=[volume.pk]),
                                 {"confirm_name": "used.qcow2", "detach": "on"})
    assert response.status_code == 302
    operation = finished(latest("volume.delete"))
    assert operation.state == OperationState.SUCCEEDED, operation.error
    assert not Volume.objects.filter(pk=volume.pk).exists()
    xml = guest.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert volume.path not in xml
    domain.refresh_from_db()
    assert domain.details["disks"] == []


def latest_or_none(kind: str):
    from operations.models import Operation
    return Operation.objects.filter(kind=kind).first()


def test_it_runs_a_pool_through_its_whole_life(celery_worker, admin_client, local_host, janitor):
    folder = janitor.folder()
    name = janitor.pool_name()
    response = admin_client.post(reverse("storage:define_type", args=[local_host.pk, "dir"]),
                                 {"name": name, "target_path": str(folder), "build": "on", "start": "on",
                                  "autostart": "on"})
    assert response.status_code == 302
    operation = finished(latest("pool.define"))
    assert operation.state == OperationState.SUCCEEDED, operation.error
    pool = StoragePool.objects.get(host=local_host, name=name)
    assert pool.active and pool.autostart and folder.is_dir() and pool.capacity > 0
    handle = libvirt.open(LOCAL).storagePoolLookupByName(name)
    assert handle.isActive() and handle.autostart() and handle.isPersistent()

    def act(action: str) -> None:
        assert admin_client.post(reverse("storage:pool_action", args=[pool.pk, action])).status_code == 302
        result = finished(latest(f"pool.{action}"))
        assert result.state == OperationState.SUCCEEDED, result.error
        pool.refresh_from_db()

    (folder / "outside.img").write_bytes(b"x" * 4096)
    act("refresh")
    assert Volume.objects.filter(pool=pool, name="outside.img").exists()
    (folder / "outside.img").unlink()
    act("autostart_off")
    assert not pool.autostart and not handle.autostart()
    act("stop")
    assert not pool.active and not handle.isActive()
    assert not Volume.objects.filter(pool=pool).exists()
    act("start")
    assert pool.active

    page = admin_client.get(reverse("storage:pool_delete", args=[pool.pk])).content.decode()
    assert f"the folder <code>{folder}</code>" in page
    response = admin_client.post(reverse("storage:pool_delete", args=[pool.pk]), {"confirm_name": "wrong"})
    assert response.status_code == 400 and not latest_or_none("pool.delete")
    response = admin_client.post(reverse("storage:pool_delete", args=[pool.pk]), {"confirm_name": name})
    assert response.status_code == 302
    assert finished(latest("pool.delete")).state == OperationState.SUCCEEDED
    assert not folder.exists()
    assert not StoragePool.objects.filter(pk=pool.pk).exists()
    with pytest.raises(libvirt.libvirtError):
        libvirt.open(LOCAL).storagePoolLookupByName(name)


def test_it_undefines_a_pool_but_keeps_its_folder(celery_worker, admin_client, dir_pool):
    libvirt.open(LOCAL).storagePoolLookupByName(dir_pool.name).destroy()
    host_reconcile(host=dir_pool.host)
    assert admin_client.post(reverse("storage:pool_action", args=[dir_pool.pk, "undefine"])).status_code == 302
    assert finished(latest("pool.undefine")).state == OperationState.SUCCEEDED
    assert not StoragePool.objects.filter(pk=dir_pool.pk).exists()
    assert (dir_pool.target_path and __import__("os").path.isdir(dir_pool.target_path))


def test_a_pool_on_a_folder_that_does_not_exist_fails_and_leaves_nothing(celery_worker, admin_client, local_host,
                                                                         janitor):
    name = janitor.pool_name()
    missing = janitor.folder()
    response = admin_client.post(reverse("storage:define_type", args=[local_host.pk, "dir"]),
                                 {"name": name, "target_path": str(missing), "start": "on"})
    assert response.status_code == 302
    operation = finished(latest("pool.define"))
    assert operation.state == OperationState.FAILED
    assert f"The folder {missing} does not exist on the host" in operation.error
    with pytest.raises(libvirt.libvirtError):
        libvirt.open(LOCAL).storagePoolLookupByName(name)
    assert not StoragePool.objects.filter(name=name).exists()
