"""Backups kept and restored anywhere, for real: two harness hosts (their own libvirtds, over TCP), A
running the small guest with a 16 MiB qcow2 disk of random data, B holding the second copies. All of
it through the API with a real worker:

- a job with a second copy on B: a full point, 1 MiB rewritten in the guest's disk (through QEMU, so
  its dirty bitmap sees it), an incremental; each copied to B (the incremental's copy names its
  parent's copy as backing file, so its checksum is its own);
- the incremental restored from its copy on B as a new VM on A, and from the original on A as a new VM
  on B: each disk flattened where the chain is, streamed, and identical to the guest's disk;
- the full point's disk attached read-only to the running VM, then detached and deleted;
- the VM shut off and restored in place from the full point's copy on B: its disk is a new volume that
  is the original again, the old volume gone;
- the next backup starts a new chain (its note says why: vda is another volume now), the job's
  retention prunes the older points with their copies on B, and the catalogue rebuilt from B's
  manifests finds the copy again;
- a damaged copy is refused, nothing written."""
from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import libvirt
import libvirt_qemu
import pytest
from lxml import etree
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse

from backups.manifest import MANIFEST_SUFFIX, catalogue_rebuild
from backups.copies import copy_enqueue
from backups.models import AttachedBackupDisk, BackupJob, RestorePoint, RestorePointCopy
from backups.services import backup_enqueue
from domains.models import Domain
from hosts.models import Host
from inventory.reconcile import host_reconcile
from operations.choices import OperationState
from operations.locks import lock_held
from operations.models import Operation
from operations.tasks import run_operation
from storage.models import StoragePool
from tests import stack
from tests.api.conftest import token_client
from tests.backups.images import MIB, random_qcow2
from tests.guests import TEST_GUEST_PREFIX, small_guest_xml
from tests.storage.conftest import remove_pool
from virt import backup as virt_backup

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The guest's vda inside QEMU, for a write through its block layer (as the guest's own would be).
VDA_BACKEND = "/machine/peripheral/virtio-disk0/virtio-backend"


def _dir_pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
    pool = conn.storagePoolDefineXML(
        f"<pool type='dir'><name>{name}</name><target><path>/var/lib/libvirt/images/{name}</path></target></pool>", 0)
    pool.build(0)
    pool.create(0)
    return pool


def _guest_with_acpi(guests, uri: str, disk_path: str) -> libvirt.virDomain:
    """The small guest with its disk, and ACPI, without which its PCI bus takes no hot-plugged disk."""
    xml = etree.fromstring(small_guest_xml(f"{TEST_GUEST_PREFIX}{uuid.uuid4().hex[:8]}", disk_path=disk_path))
    etree.SubElement(etree.SubElement(xml, "features"), "acpi")
    domain = libvirt.open(uri).defineXML(etree.tostring(xml, encoding="unicode"))
    guests.uuids.append((uri, domain.UUIDString()))
    domain.create()
    return domain


def on_disk(harness_host, path: str) -> Path:
    """Where a file of a harness host's /var/lib/libvirt is on this machine."""
    return harness_host.state_dir / "lib" / Path(path).relative_to("/var/lib/libvirt")


def identical(left: Path, right: Path) -> bool:
    """What two qcow2 images read as (the guest's view) is the same."""
    return subprocess.run(["qemu-img", "compare", "-U", "-f", "qcow2", "-F", "qcow2", str(left), str(right)],
                          capture_output=True).returncode == 0


@pytest.fixture
def two_hosts(harness, guests, tmp_path):
    a, b = harness(), harness()
    suffix = uuid.uuid4().hex[:8]
    conn_a, conn_b = libvirt.open(a.tcp_uri), libvirt.open(b.tcp_uri)
    names = {"disks": f"vmsite-test-cpdisks-{suffix}", "backups": f"vmsite-test-cpbackups-{suffix}",
             "copies": f"vmsite-test-cpcopies-{suffix}", "restores": f"vmsite-test-cprestores-{suffix}"}
    disks = _dir_pool(conn_a, names["disks"])
    _dir_pool(conn_a, names["backups"])
    _dir_pool(conn_b, names["copies"])
    _dir_pool(conn_b, names["restores"])
    disk_path = f"/var/lib/libvirt/images/{names['disks']}/data.qcow2"
    random_qcow2(on_disk(a, disk_path), 16 * MIB)
    original = tmp_path / "original.qcow2"
    shutil.copy(on_disk(a, disk_path), original)
    disks.refresh(0)
    domain = _guest_with_acpi(guests, a.tcp_uri, disk_path)
    hosts = [Host.objects.create(name=f"copy-{role}-{suffix}", transport="tcp", address=harness_host.address)
             for role, harness_host in (("a", a), ("b", b))]
    for host in hosts:
        host_reconcile(host=host)
    yield {"a": a, "b": b, "host_a": hosts[0], "host_b": hosts[1], "conn_a": conn_a, "conn_b": conn_b,
           "handle": domain, "disk": on_disk(a, disk_path), "original": original,
           "vm": Domain.objects.get(host=hosts[0], uuid=domain.UUIDString()), **names}
    for checkpoint in domain.listAllCheckpoints(0):
        checkpoint.delete(libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)
    guests.cleanup()
    for uri, pool_names in ((a.tcp_uri, ("backups", "disks")), (b.tcp_uri, ("copies", "restores"))):
        for key in pool_names:
            remove_pool(uri, names[key])


def finished(operation: Operation, timeout: float = 120) -> Operation:
    def done() -> bool:
        operation.refresh_from_db()
        return operation.is_finished

    stack.wait_until(done, timeout=timeout, message=f"{operation.kind} #{operation.pk}")
    assert operation.state == OperationState.SUCCEEDED, operation.error
    return operation


def queued(answer) -> Operation:
    assert answer.status_code == 202, answer.json()
    return finished(Operation.objects.get(pk=answer.json()["operation"]))


def run_with_copy(api, job: BackupJob) -> tuple[RestorePoint, RestorePointCopy]:
    time.sleep(1.1)  # a point is named by the second it is taken in
    answer = api.post(reverse("api:backup_job_run", args=[job.pk]))
    assert answer.status_code == 202 and answer.json()["skipped"] == [], answer.json()
    (operation_id,) = answer.json()["operations"]
    backup = finished(Operation.objects.get(pk=operation_id))
    point = RestorePoint.objects.filter(domain_uuid=job.domains.get().uuid).first()
    assert "Its copy to" in backup.message, backup.message
    copy_operation = finished(Operation.objects.filter(kind="backup.copy", target_id=point.pk).get())
    assert "checksum matched the catalogue" in copy_operation.message
    return point, RestorePointCopy.objects.get(point=point)


def files_of(conn: libvirt.virConnect, pool_name: str) -> set[str]:
    pool = conn.storagePoolLookupByName(pool_name)
    pool.refresh(0)
    return set(pool.listVolumes())


def test_copies_restores_anywhere_in_place_and_attached(two_hosts, celery_worker, guests):
    env = two_hosts
    vm, host_a, host_b = env["vm"], env["host_a"], env["host_b"]
    api = token_client(get_user_model().objects.create_superuser(f"cp-{uuid.uuid4().hex[:6]}", password="x"))
    made = api.post(reverse("api:backup_jobs"), {
        "name": "with-copy", "host": host_a.pk, "selection": "chosen", "domains": [vm.pk],
        "pool_name": env["backups"], "schedule": "0 3 * * *", "full_every": 10, "keep_last": 1,
        "copy_host": host_b.pk, "copy_pool_name": env["copies"], "enabled": True}, format="json")
    assert made.status_code == 201, made.json()
    job = BackupJob.objects.get(pk=made.json()["id"])

    full, full_copy = run_with_copy(api, job)
    said = libvirt_qemu.qemuMonitorCommand(env["handle"], f'qemu-io -d {VDA_BACKEND} "write -P 0x5a 4M 1M"',
                                           libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
    assert "rror" not in said, said  # qemu-io prints its own report on QEMU's stdout, not here
    incremental, incremental_copy = run_with_copy(api, job)
    assert (full.kind, incremental.kind, incremental.parent_id) == ("full", "incremental", full.pk)
    assert full_copy.checksums == {"vda": full.disks.get().checksum}  # copied byte for byte
    assert incremental_copy.checksums["vda"] != incremental.disks.get().checksum  # its backing file is B's now
    assert files_of(env["conn_b"], env["copies"]) == {
        full.disks.get().volume, full.manifest, incremental.disks.get().volume, incremental.manifest}
    listed = api.get(reverse("api:vm_backups", args=[vm.pk])).json()["results"]
    assert {copy["host"] for point in listed for copy in point["copies"]} == {host_b.pk}

    # The incremental, from its copy on B, as a new VM on A; and from the original on A, on B.
    for host, pool, source, harness_host in ((host_a, env["disks"], incremental_copy.pk, env["a"]),
                                             (host_b, env["restores"], "", env["b"])):
        name = f"{TEST_GUEST_PREFIX}restored-{uuid.uuid4().hex[:6]}"
        guests.created.append((harness_host.tcp_uri, name))
        operation = queued(api.post(reverse("api:vm_backup_restore", args=[vm.pk, incremental.pk]),
                                    {"name": name, "host": host.pk, "pool": pool, "source": source}, format="json"))
        assert f"as {name} on {host}" in operation.message, operation.message
        assert Domain.objects.filter(host=host, name=name).exists()
        restored = on_disk(harness_host, f"/var/lib/libvirt/images/{pool}/{name}-vda.qcow2")
        assert identical(restored, env["disk"]), f"{name} on {host} differs from the guest's disk"
    assert not identical(env["original"], env["disk"])  # the rewritten MiB is in what was restored

    # The full point's disk, attached read-only to the running VM; detached and deleted after.
    queued(api.post(reverse("api:vm_backup_attach", args=[vm.pk, full.pk]), {"disk": "vda", "pool": env["disks"]},
                    format="json"))
    attached = AttachedBackupDisk.objects.get(domain=vm)
    live = env["handle"].XMLDesc(0)
    assert "<target dev='vdb' bus='virtio'/>" in live and "<readonly/>" in live
    assert identical(on_disk(env["a"], f"/var/lib/libvirt/images/{env['disks']}/{attached.volume}"), env["original"])
    env["handle"].destroy()
    host_reconcile(host=host_a)
    refused = api.post(reverse("api:vm_backup_attach", args=[vm.pk, full.pk]), {"disk": "vda", "pool": env["disks"]},
                       format="json")
    assert refused.status_code == 400 and "attached to a running VM" in str(refused.json())
    queued(api.post(reverse("api:vm_backup_detach", args=[vm.pk, attached.pk]), {}, format="json"))
    assert attached.volume not in files_of(env["conn_a"], env["disks"])
    assert not AttachedBackupDisk.objects.exists()

    # In place, from the full point's copy on B: the disk is what it was at the full backup again.
    operation = queued(api.post(reverse("api:vm_backup_restore_in_place", args=[vm.pk, full.pk]),
                                {"source": full_copy.pk, "confirm": True}, format="json"))
    assert "next backup is full" in operation.message
    (restored,) = etree.fromstring(env["handle"].XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).xpath(
        "devices/disk[target/@dev='vda']/source/@file")
    assert restored.endswith(f"/data-restored-op{operation.pk}.qcow2"), restored  # a new volume, switched to
    assert identical(on_disk(env["a"], restored), env["original"])
    assert not env["disk"].exists()  # the old volume went
    assert env["handle"].listAllCheckpoints(0) == []

    # The chain restarts; retention (keep 1) prunes both older points, and their copies on B.
    env["handle"].create()
    host_reconcile(host=host_a)
    restarted, restarted_copy = run_with_copy(api, job)
    assert restarted.kind == "full" and "Disk vda is another image now" in restarted.note, restarted.note
    assert set(RestorePoint.objects.filter(domain_uuid=vm.uuid).values_list("pk", flat=True)) == {restarted.pk}
    assert files_of(env["conn_b"], env["copies"]) == {restarted.disks.get().volume, restarted.manifest}

    # The catalogue, rebuilt from B's manifests, knows the copy again.
    restarted_copy.delete()
    manifests = virt_backup.read_files(env["conn_b"], env["copies"], suffix=MANIFEST_SUFFIX)
    added, skipped = catalogue_rebuild(host=host_b, pool_name=env["copies"], manifests=manifests)
    assert (added, skipped) == ([], [])
    copy = RestorePointCopy.objects.get(point=restarted)
    assert copy.checksums == restarted_copy.checksums

    # A damaged copy is refused before anything is written: the checksum is checked where it is read.
    damaged = on_disk(env["b"], f"/var/lib/libvirt/images/{env['copies']}/{restarted.disks.get().volume}")
    with damaged.open("r+b") as image:
        image.seek(-4096, 2)
        image.write(b"\xff" * 16)
    before = files_of(env["conn_a"], env["disks"])
    answer = api.post(reverse("api:vm_backup_restore", args=[vm.pk, restarted.pk]),
                      {"name": f"{TEST_GUEST_PREFIX}damaged", "host": host_a.pk, "pool": env["disks"],
                       "source": copy.pk}, format="json")
    operation = Operation.objects.get(pk=answer.json()["operation"])
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=60, message="the restore")
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED and "it is damaged. Nothing was restored" in operation.error
    assert files_of(env["conn_a"], env["disks"]) == before


def test_two_copies_into_one_pool_at_once_copy_their_shared_point_once(two_hosts, redis_ready, settings):
    """The copies of a full point and of its incremental, run by two workers at the same moment into one
    pool: both need the full point there. Each point's copy is made under a lock across workers (the
    test holds the full point's lock first, so both are seen waiting on it); the full point is copied
    once, by whichever got the lock, and the other uses that copy."""
    settings.OPERATIONS_QUEUE = f"copy-race-{uuid.uuid4().hex[:6]}"  # no worker: the threads below run them
    env = two_hosts
    pool_row = StoragePool.objects.get(host=env["host_a"], name=env["backups"])
    points = []
    for _ in range(2):
        time.sleep(1.1)  # a point is named by the second it is taken in
        backup = backup_enqueue(domain=env["vm"], user=None, pool=pool_row)
        run_operation(backup.pk)
        backup.refresh_from_db()
        assert backup.state == OperationState.SUCCEEDED, backup.error
        points.append(RestorePoint.objects.filter(domain_uuid=env["vm"].uuid).first())
    full, incremental = sorted(points, key=lambda point: point.created_at)
    assert incremental.parent_id == full.pk
    copies = [copy_enqueue(point=point, host=env["host_b"], pool_name=env["copies"], user=None)
              for point in (full, incremental)]

    def run(operation_id: int) -> None:
        try:
            run_operation(operation_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(copy.pk,)) for copy in copies]
    with lock_held(f"backup-copy:{env['host_b'].pk}:{env['copies']}:{full.pk}", wait=1):
        for thread in threads:
            thread.start()
        stack.wait_until(lambda: all(Operation.objects.get(pk=copy.pk).message.startswith(
            f"Waiting for another operation's copy of {full.name}") for copy in copies),
            timeout=60, message="both copies to wait for the full point's")
    for thread in threads:
        thread.join(timeout=120)
    for copy in copies:
        copy.refresh_from_db()
        assert copy.state == OperationState.SUCCEEDED, copy.error
    assert sorted(int(copy.message.split("Copied ")[1].split()[0]) for copy in copies) in ([0, 2], [1, 1])
    assert RestorePointCopy.objects.filter(point=full).count() == 1
    assert RestorePointCopy.objects.filter(point=incremental).count() == 1
    assert files_of(env["conn_b"], env["copies"]) == {
        full.disks.get().volume, full.manifest, incremental.disks.get().volume, incremental.manifest}
