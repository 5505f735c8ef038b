"""A backup job run for real: a harness host (its own libvirtd, over TCP), the small guest with a
qcow2 data disk, running; a job made and run through the API with a real worker. Four runs with a
full backup every 2 runs and the last 2 points kept: full A, incremental B, full C (A stays: B, a
kept point, rests on it), incremental D (now A and B go, their files and manifests too)."""
from __future__ import annotations

import json
import time
import uuid

import libvirt
import pytest
from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from backups.manifest import MANIFEST_SUFFIX
from backups.models import BackupJob, RestorePoint
from domains.models import Domain
from hosts.models import Host
from inventory.reconcile import host_reconcile
from operations.choices import OperationState
from operations.models import Operation
from tests import stack
from tests.api.conftest import token_client
from tests.storage.conftest import remove_pool
from virt.storage import pool_volume_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def remote(harness):
    return harness()


def _dir_pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
    pool = conn.storagePoolDefineXML(
        f"<pool type='dir'><name>{name}</name><target><path>/var/lib/libvirt/images/{name}</path></target></pool>", 0)
    pool.build(0)
    pool.create(0)
    return pool


@pytest.fixture
def guest_host(remote, guests):
    """The harness host registered, with a running small guest whose vda is a 16 MiB qcow2 in a pool
    of its own, and an empty backup pool."""
    suffix = uuid.uuid4().hex[:8]
    conn = libvirt.open(remote.tcp_uri)
    disks, backups = f"vmsite-test-jobdisks-{suffix}", f"vmsite-test-jobbackups-{suffix}"
    disk = pool_volume_create(_dir_pool(conn, disks), name="data.qcow2", capacity=16 * 2**20, allocation=None,
                              fmt="qcow2")
    _dir_pool(conn, backups)
    domain = guests.define(remote.tcp_uri, disk_path=disk.path(), start=True)
    host = Host.objects.create(name=f"jobs-{suffix}", transport="tcp", address=remote.address)
    host_reconcile(host=host)
    yield {"host": host, "domain": Domain.objects.get(host=host, uuid=domain.UUIDString()), "pool": backups,
           "conn": conn, "handle": domain}
    if domain.isActive():
        domain.destroy()
    for checkpoint in domain.listAllCheckpoints(0):
        checkpoint.delete(libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)
    for name in (backups, disks):
        remove_pool(remote.tcp_uri, name)
        try:
            conn.storagePoolLookupByName(name).undefine()
        except libvirt.libvirtError:
            pass


def _run(api, job: BackupJob) -> RestorePoint:
    time.sleep(1.1)  # a point is named by the second it is taken in
    answer = api.post(reverse("api:backup_job_run", args=[job.pk]))
    assert answer.status_code == 202 and answer.json()["skipped"] == [], answer.json()
    (operation_id,) = answer.json()["operations"]
    return _finished_point(Operation.objects.get(pk=operation_id))


def _run_as_beat_does(job: BackupJob) -> RestorePoint:
    """The job's PeriodicTask sent to the worker, as beat sends it when the schedule is due."""
    time.sleep(1.1)
    before = Operation.objects.filter(kind="backup.create").count()
    task = PeriodicTask.objects.get(pk=job.periodic_task_id)
    current_app.send_task(task.task, json.loads(task.args), queue=settings.OPERATIONS_QUEUE)
    stack.wait_until(lambda: Operation.objects.filter(kind="backup.create").count() > before, timeout=30,
                     message="the job's task to queue a backup")
    return _finished_point(Operation.objects.filter(kind="backup.create").order_by("-pk").first())


def _finished_point(operation: Operation) -> RestorePoint:
    def done() -> bool:
        operation.refresh_from_db()
        return operation.is_finished

    stack.wait_until(done, timeout=120, message=f"backup #{operation.pk}")
    assert operation.state == OperationState.SUCCEEDED, operation.error
    return RestorePoint.objects.filter(domain_uuid=operation_domain_uuid(operation)).first()


def operation_domain_uuid(operation: Operation):
    return Domain.objects.get(pk=operation.target_id).uuid


def test_a_job_backs_up_its_vm_on_each_run_and_prunes_without_breaking_a_chain(guest_host, celery_worker):
    admin = get_user_model().objects.create_superuser(f"jobs-{uuid.uuid4().hex[:6]}", password="x")
    api = token_client(admin)
    made = api.post(reverse("api:backup_jobs"), {
        "name": "every-two", "host": guest_host["host"].pk, "selection": "chosen",
        "domains": [guest_host["domain"].pk], "pool_name": guest_host["pool"], "schedule": "0 3 * * *",
        "full_every": 2, "keep_last": 2, "enabled": True}, format="json")
    assert made.status_code == 201, made.json()
    job = BackupJob.objects.get(pk=made.json()["id"])
    assert job.periodic_task.task == "backups.job_run"

    a = _run(api, job)
    b = _run(api, job)
    c = _run(api, job)
    assert [a.kind, b.kind, c.kind] == ["full", "incremental", "full"] and b.parent_id == a.pk
    assert "full backup every 2 run(s)" in c.note
    # Three points, two to keep (C, B): B rests on A, so A stays.
    assert set(RestorePoint.objects.values_list("name", flat=True)) == {a.name, b.name, c.name}
    d = _run_as_beat_does(job)
    assert d.kind == "incremental" and d.parent_id == c.pk
    assert set(RestorePoint.objects.values_list("name", flat=True)) == {c.name, d.name}
    operation = Operation.objects.filter(kind="backup.create").order_by("-pk").first()
    assert f"Pruned by the job's retention: {b.name}, {a.name}" in operation.message

    pool = guest_host["conn"].storagePoolLookupByName(guest_host["pool"])
    pool.refresh(0)
    files = set(pool.listVolumes())
    kept_files = {disk.volume for point in (c, d) for disk in point.disks.all()} | {c.manifest, d.manifest}
    assert files == kept_files
    assert sum(name.endswith(MANIFEST_SUFFIX) for name in files) == 2
    checkpoints = {checkpoint.getName() for checkpoint in guest_host["handle"].listAllCheckpoints(0)}
    assert checkpoints == {c.checkpoint, d.checkpoint}
