"""Backups that do not finish: cancelled from the page, their worker killed midway, or their pool
full. Each ends as a failed operation that says why, with no file, no checkpoint and no restore
point of it left, and the VM's next backup starts as if it had never been tried.

The guest is the small one (it stays in SeaBIOS) with a qcow2 disk full of random bytes, so the
backup job has real data to copy and runs long enough to be caught midway."""
from __future__ import annotations

import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import libvirt
import pytest
from django.urls import reverse
from django.utils import timezone

from backups.manifest import point_stem
from backups.models import RestorePoint
from backups.services import backup_enqueue
from domains.models import Domain
from inventory.reconcile import host_reconcile
from operations import services as operation_services
from operations.choices import OperationState
from operations.models import Operation
from operations.tasks import run_operation
from storage.models import StoragePool
from tests import stack
from tests.backups.images import MIB, random_qcow2
from tests.guests import ScratchPool
from virt import backup as virt_backup
from virt.xml.storage import PoolXML

LOCAL = "qemu:///system"
IMAGES = Path("/var/lib/libvirt/images")
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def small_pool(local_libvirt, tmp_path):
    """A dir pool on its own 16 MiB ext4 filesystem (a loop-mounted file): a backup pool that fills."""
    image = tmp_path / "fs.img"
    with open(image, "wb") as out:
        out.truncate(16 * MIB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    folder = IMAGES / f"vmsite-test-full-{uuid.uuid4().hex[:8]}"
    folder.mkdir(mode=0o755)
    subprocess.run(["mount", "-o", "loop", str(image), str(folder)], check=True, capture_output=True)
    try:
        (folder / "lost+found").rmdir()  # mkfs's, not a volume
        pool = ScratchPool(local_libvirt, str(folder))
        yield pool
        pool.remove()
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)
        folder.rmdir()


def guest_with_data(guests, scratch_pool, mib: int) -> libvirt.virDomain:
    """The small guest, running, its disk `mib` MiB of random bytes."""
    path = Path(PoolXML.from_libvirt(scratch_pool.pool.XMLDesc(0)).target_path) / "data.qcow2"
    random_qcow2(path, mib * MIB)
    scratch_pool.pool.refresh(0)
    return guests.define(LOCAL, disk_path=str(path), start=True)


@pytest.fixture
def remove_checkpoints():
    domains: list[libvirt.virDomain] = []
    yield domains.append
    for domain in domains:  # a guest with checkpoints cannot be undefined
        for checkpoint in domain.listAllCheckpoints(0):
            try:
                checkpoint.delete(libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)
            except libvirt.libvirtError as exc:  # a failed backup's own clean-up removed it meanwhile
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_CHECKPOINT:
                    raise


def the_row(local_host, domain: libvirt.virDomain) -> Domain:
    host_reconcile(host=local_host)
    return Domain.objects.select_related("host").get(host=local_host, uuid=domain.UUIDString())


def files_of(pool: ScratchPool, domain_uuid) -> list[str]:
    pool.pool.refresh(0)
    return sorted(name for name in pool.pool.listVolumes() if name.startswith(point_stem(domain_uuid, "")))


def checkpoints_of(domain: libvirt.virDomain) -> list[str]:
    return sorted(checkpoint.getName() for checkpoint in domain.listAllCheckpoints(0))


def wait_for(operation: Operation, test, message: str, timeout: float = 120) -> Operation:
    def reached():
        operation.refresh_from_db()
        return test(operation)

    stack.wait_until(reached, timeout=timeout, interval=0.02, message=message)
    return operation


def test_a_cancelled_backup_job_is_aborted_and_leaves_nothing(local_libvirt, guests, scratch_pool, backup_pool,
                                                              remove_checkpoints):
    domain = guest_with_data(guests, scratch_pool, 256)
    remove_checkpoints(domain)
    conn = libvirt.open(LOCAL)
    names = {disk.target: f"bk-1-{disk.target}.qcow2" for disk in virt_backup.source_disks(domain)}
    with pytest.raises(virt_backup.BackupCancelled, match="aborted"):
        virt_backup.back_up_running(conn, domain, pool_name=backup_pool.name, volume_names=names,
                                    checkpoint="vmsite-1", since=None, progress=lambda *_: None,
                                    cancelled=lambda: True, poll_interval=0.05)
    backup_pool.pool.refresh(0)
    assert backup_pool.pool.listVolumes() == []
    assert checkpoints_of(domain) == []
    assert domain.jobStats(0).get("type") == libvirt.VIR_DOMAIN_JOB_NONE


def test_cancel_on_the_page_stops_a_running_backup(celery_worker, local_host, guests, scratch_pool, backup_pool,
                                                   admin_client, remove_checkpoints):
    # 2 GiB: on a quiet machine a backup of 512 MiB was seen to finish before the cancel reached it.
    domain = guest_with_data(guests, scratch_pool, 2048)
    remove_checkpoints(domain)
    row = the_row(local_host, domain)
    response = admin_client.post(reverse("backups:backup_now", args=[row.pk]), {"pool": backup_pool.name})
    assert response.status_code == 302
    operation = Operation.objects.filter(kind="backup.create").latest("created_at")
    wait_for(operation, lambda op: op.progress >= 5 or op.is_finished, "the backup job to start")
    assert admin_client.post(reverse("operations:cancel", args=[operation.pk])).status_code == 302
    wait_for(operation, lambda op: op.is_finished, "the backup to stop")
    assert operation.state == OperationState.FAILED
    assert operation.error.startswith("Cancelled by admin"), operation.error
    assert files_of(backup_pool, row.uuid) == [] and checkpoints_of(domain) == []
    assert not RestorePoint.objects.filter(domain_uuid=row.uuid).exists()


def test_a_backup_whose_worker_is_killed_is_failed_cleaned_up_and_the_next_one_starts_afresh(
        redis_ready, local_host, guests, scratch_pool, backup_pool, stack_log_dir, settings, remove_checkpoints):
    settings.OPERATIONS_QUEUE = "backup-kill-test"  # only the worker this test kills listens here
    domain = guest_with_data(guests, scratch_pool, 512)
    remove_checkpoints(domain)
    row = the_row(local_host, domain)
    pool_row = StoragePool.objects.get(host=local_host, name=backup_pool.name)
    worker = stack.start_worker("doomed-backup-worker", log_dir=stack_log_dir, queues="backup-kill-test",
                                concurrency=1)
    try:
        operation = backup_enqueue(domain=row, user=None, pool=pool_row)
        wait_for(operation, lambda op: op.message.startswith("Copied") or op.is_finished, "the backup job to copy")
        worker.kill()
    finally:
        worker.stop()
    assert not operation.is_finished
    assert files_of(backup_pool, row.uuid), "the killed backup had made its file"

    later = timezone.now() + timedelta(seconds=settings.OPERATION_HEARTBEAT_TIMEOUT + 1)
    assert operation_services.operations_sweep(now=later) == 1
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED and "stopped responding" in operation.error
    # The sweep queued the clean-up (on the dead worker's queue): run it here, as a worker would.
    cleanup = Operation.objects.get(kind="backup.cleanup", target_id=row.pk)
    run_operation(cleanup.pk)
    cleanup.refresh_from_db()
    assert cleanup.state == OperationState.SUCCEEDED, cleanup.error
    assert "An interrupted backup was cleaned up" in cleanup.message and "1 checkpoint(s)" in cleanup.message
    assert files_of(backup_pool, row.uuid) == [] and checkpoints_of(domain) == []
    assert domain.jobStats(0).get("type") == libvirt.VIR_DOMAIN_JOB_NONE
    assert not RestorePoint.objects.filter(domain_uuid=row.uuid).exists()

    again = backup_enqueue(domain=row, user=None, pool=pool_row)
    run_operation(again.pk)
    again.refresh_from_db()
    assert again.state == OperationState.SUCCEEDED, again.error
    point = RestorePoint.objects.get(domain_uuid=row.uuid)
    assert point.kind == "full" and point.note == ""
    assert files_of(backup_pool, row.uuid) == sorted([point.disks.get().volume, point.manifest])
    assert checkpoints_of(domain) == [point.checkpoint]


def test_a_full_backup_pool_is_a_clear_failure_with_nothing_half_kept(celery_worker, local_host, guests,
                                                                      scratch_pool, small_pool, admin_client,
                                                                      remove_checkpoints):
    domain = guest_with_data(guests, scratch_pool, 64)  # 64 MiB of data for a 16 MiB filesystem
    remove_checkpoints(domain)
    row = the_row(local_host, domain)
    response = admin_client.post(reverse("backups:backup_now", args=[row.pk]), {"pool": small_pool.name})
    assert response.status_code == 302
    operation = wait_for(Operation.objects.filter(kind="backup.create").latest("created_at"),
                         lambda op: op.is_finished, "the backup to fail")
    assert operation.state == OperationState.FAILED
    assert "No space left on device" in operation.error and "files were removed" in operation.error, operation.error
    small_pool.pool.refresh(0)
    assert small_pool.pool.listVolumes() == []
    assert checkpoints_of(domain) == []
    assert not RestorePoint.objects.filter(domain_uuid=row.uuid).exists()
