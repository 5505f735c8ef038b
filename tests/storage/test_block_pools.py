"""A logical pool (LVM) and a disk pool (partitions) on loop devices, made and torn down by the
test, through the pages and a real worker against the real libvirtd."""
import subprocess
import uuid
from pathlib import Path

import pytest
from django.urls import reverse

from operations.choices import OperationState
from storage.models import StoragePool, Volume
from tests.storage.conftest import PREFIX, finished, latest

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MIB = 1024 * 1024


@pytest.fixture
def loop_device():
    """A 64 MiB loop device on a sparse file; detached and removed afterwards."""
    image = Path("/var/tmp") / f"{PREFIX}{uuid.uuid4().hex[:8]}.img"
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    device = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True,
                            text=True).stdout.strip()
    yield device
    subprocess.run(["wipefs", "-a", "-q", device], capture_output=True)
    subprocess.run(["losetup", "-d", device], capture_output=True)
    image.unlink(missing_ok=True)


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def define(client, host, pool_type: str, data: dict) -> StoragePool:
    response = client.post(reverse("storage:define_type", args=[host.pk, pool_type]), data)
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    operation = finished(latest("pool.define"))
    assert operation.state == OperationState.SUCCEEDED, operation.error
    return StoragePool.objects.get(host=host, name=data["name"])


def act(client, pool: StoragePool, action: str) -> None:
    assert client.post(reverse("storage:pool_action", args=[pool.pk, action])).status_code == 302
    operation = finished(latest(f"pool.{action}"))
    assert operation.state == OperationState.SUCCEEDED, operation.error


def test_it_builds_a_volume_group_on_a_loop_device_and_deletes_it(celery_worker, admin_client, local_host,
                                                                  loop_device, janitor):
    name = janitor.pool_name()
    group = f"{PREFIX}vg-{uuid.uuid4().hex[:6]}"
    pool = define(admin_client, local_host, "logical",
                  {"name": name, "vg_name": group, "source_devices": loop_device, "build": "on", "start": "on"})
    assert pool.active and pool.pool_type == "logical" and pool.target_path == f"/dev/{group}"
    assert pool.details["source_name"] == group and pool.details["source_devices"] == [loop_device]
    assert 50 * MIB < pool.capacity <= 64 * MIB and pool.available == pool.capacity
    assert group in run("vgs", "--noheadings", "-o", "vg_name") and loop_device in run("pvs", "--noheadings")

    page = admin_client.get(reverse("storage:pool_delete", args=[pool.pk])).content.decode()
    assert f"the LVM volume group <code>{group}</code>" in page
    response = admin_client.post(reverse("storage:pool_delete", args=[pool.pk]), {"confirm_name": name})
    assert response.status_code == 302
    operation = finished(latest("pool.delete"))
    assert operation.state == OperationState.SUCCEEDED, operation.error
    assert group not in run("vgs", "--noheadings", "-o", "vg_name")
    assert not StoragePool.objects.filter(pk=pool.pk).exists()


def test_it_partitions_a_loop_device_as_a_disk_pool(celery_worker, admin_client, local_host, loop_device,
                                                    janitor):
    name = janitor.pool_name()
    pool = define(admin_client, local_host, "disk",
                  {"name": name, "source_device": loop_device, "disk_format": "gpt", "build": "on", "start": "on"})
    assert pool.active and pool.pool_type == "disk" and pool.details["source_format"] == "gpt"
    assert "Partition Table: gpt" in run("parted", "-s", loop_device, "print")

    partition = f"{Path(loop_device).name}p1"
    form = reverse("storage:volume_create", args=[pool.pk])
    page = admin_client.get(form).content.decode()
    assert 'value="qcow2"' not in page and "id_backing" not in page  # a partition has no image format
    response = admin_client.post(form, {"name": partition, "format": "raw", "capacity_0": "16", "capacity_1": "MiB"})
    assert response.status_code == 302, response.context["form"].errors
    operation = finished(latest("volume.create"))
    assert operation.state == OperationState.SUCCEEDED, operation.error
    volume = Volume.objects.get(pool=pool, name=partition)
    assert volume.capacity >= 16 * MIB and volume.path == f"{loop_device}p1"
    assert " 1 " in run("parted", "-s", loop_device, "print")

    act(admin_client, pool, "stop")
    act(admin_client, pool, "undefine")
    assert not StoragePool.objects.filter(pk=pool.pk).exists()


def test_it_uses_an_existing_volume_group_and_undefining_keeps_it(celery_worker, admin_client, local_host,
                                                                   loop_device, janitor):
    group = f"{PREFIX}vg-{uuid.uuid4().hex[:6]}"
    run("vgcreate", "-q", group, loop_device)
    try:
        name = janitor.pool_name()
        pool = define(admin_client, local_host, "logical", {"name": name, "vg_name": group, "start": "on"})
        assert pool.active and pool.capacity > 50 * MIB and pool.details["source_name"] == group
        act(admin_client, pool, "stop")
        act(admin_client, pool, "undefine")
        assert not StoragePool.objects.filter(pk=pool.pk).exists()
        assert group in run("vgs", "--noheadings", "-o", "vg_name")  # the storage itself is kept
    finally:
        subprocess.run(["vgremove", "-q", "-f", group], capture_output=True)
        subprocess.run(["pvremove", "-q", "-f", loop_device], capture_output=True)
