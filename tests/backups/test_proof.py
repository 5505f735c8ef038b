"""The proof of issue 18, with the suite's real guest: write known data in the guest, take a full
backup, change the data, take an incremental, change it again, take another incremental; restore
each of the three points into a new VM and check inside each guest that its disk holds exactly what
it held at that point. Then lose the catalogue and rebuild it from the manifests in the pool.

Everything goes through vmsite's pages and a real Celery worker, against the real libvirtd."""
from __future__ import annotations

import uuid

import libvirt
import pytest
from django.urls import reverse

from backups.manifest import MANIFEST_SUFFIX, catalogue_rebuild
from backups.models import RestorePoint
from domains.models import Domain
from inventory.reconcile import host_reconcile
from operations.choices import OperationState
from operations.models import Operation
from tests import stack
from tests.domains.helpers import LOCAL, cached
from tests.realguest import GuestShell
from virt import backup as virt_backup
from virt.storage import pool_volume_create
from virt.xml.domain import Disk

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DISK_MIB = 32
READ = f"dd if=/dev/vda bs=1M count={DISK_MIB} 2>/dev/null | sha256sum"


@pytest.fixture
def guest_with_disk(guests, scratch_pool):
    """The real guest with a 32 MiB qcow2 (v3) data disk as vda, booted."""
    volume = pool_volume_create(scratch_pool.pool, name="data.qcow2", capacity=DISK_MIB * 2**20, allocation=None,
                                fmt="qcow2")
    guest = guests.real(LOCAL, start=False)
    disk = Disk.new()
    disk.type, disk.device = "file", "disk"
    disk.driver_name, disk.driver_type = "qemu", "qcow2"
    disk.source_file = volume.path()
    disk.target_dev, disk.target_bus = "vda", "virtio"
    guest.domain.attachDeviceFlags(disk.to_xml(), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    guest.start()
    yield guest
    for checkpoint in guest.domain.listAllCheckpoints(0):
        checkpoint.delete(libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)


def write(guest, region: int) -> str:
    """Fill 1 MiB at region × 2 MiB with fresh random bytes, flushed to the disk; the whole disk's digest."""
    guest.shell.run(f"dd if=/dev/urandom of=/dev/vda bs=1M count=1 seek={region * 2} conv=fsync 2>/dev/null")
    return guest.shell.run(READ).split()[0]


def finished(operation: Operation, timeout: float = 180) -> Operation:
    def done():
        operation.refresh_from_db()
        return operation.is_finished

    stack.wait_until(done, timeout=timeout, message=f"{operation.kind} #{operation.pk} to finish")
    assert operation.state == OperationState.SUCCEEDED, operation.error
    return operation


def back_up(client, domain: Domain, pool: str) -> tuple[Operation, RestorePoint]:
    response = client.post(reverse("backups:backup_now", args=[domain.pk]), {"pool": pool})
    assert response.status_code == 302
    operation = finished(Operation.objects.filter(kind="backup.create").latest("created_at"))
    return operation, RestorePoint.objects.filter(domain_uuid=domain.uuid).latest("created_at")


def test_each_restore_point_restores_the_data_the_guest_had_then(celery_worker, local_host, guest_with_disk,
                                                                 scratch_pool, backup_pool, guests, admin_client):
    guest = guest_with_disk
    assert guest.shell.run("cat /sys/block/vda/size").strip() == str(DISK_MIB * 2**20 // 512)
    domain = cached(local_host, guest.domain)
    host_reconcile(host=local_host)  # the pools, for the forms

    digests, points = [], []
    for step, region in enumerate((0, 3, 0)):  # the third change overwrites what the full backup holds
        digests.append(write(guest, region))
        operation, point = back_up(admin_client, domain, backup_pool.name)
        points.append(point)
        assert operation.message.startswith(f"{point.kind.capitalize()} backup {point.name}")
    assert len(set(digests)) == 3
    assert [point.kind for point in points] == ["full", "incremental", "incremental"]
    assert points[1].parent == points[0] and points[2].parent == points[1]
    assert len({point.chain for point in points}) == 1 and not any(point.note for point in points)
    # The incrementals hold only what changed: a 1 MiB region, not the 32 MiB disk.
    assert all(point.disks.get().size < 4 * 2**20 for point in points[1:])
    assert "froze" in points[0].consistency, points[0].consistency  # the real guest runs the agent

    booting = []  # each restored VM boots while the next point is restored
    for point, digest in zip(points, digests):
        name = f"restored-{point.name}-{uuid.uuid4().hex[:4]}"
        response = admin_client.post(reverse("backups:restore", args=[domain.pk, point.pk]),
                                     {"name": name, "pool": scratch_pool.name})
        assert response.status_code == 302, response.content.decode()[:2000]
        operation = finished(Operation.objects.filter(kind="backup.restore").latest("created_at"))
        assert "checksums matched the catalogue" in operation.message
        restored = libvirt.open(LOCAL).lookupByName(name)
        guests.uuids.append((LOCAL, restored.UUIDString()))
        assert restored.UUIDString() != guest.uuid
        assert Domain.objects.filter(host=local_host, name=name).exists()
        restored.create()
        shell = GuestShell(LOCAL, restored.UUIDString())
        guests.shells.append(shell)
        booting.append((point, digest, shell))
    for point, digest, shell in booting:
        shell.wait_ready()
        assert shell.run(READ).split()[0] == digest, f"the disk restored from {point.name} differs"

    # The catalogue is lost; the manifests in the pool bring it back, chain and checksums included.
    expected = {point.name: (point.kind, point.parent.name if point.parent else None,
                             [(d.target, d.volume, d.checksum) for d in point.disks.all()]) for point in points}
    for point in reversed(points):
        point.delete()
    manifests = virt_backup.read_files(libvirt.open(LOCAL), backup_pool.name, suffix=MANIFEST_SUFFIX)
    added, skipped = catalogue_rebuild(host=local_host, pool_name=backup_pool.name, manifests=manifests)
    assert skipped == [] and len(added) == 3
    rebuilt = {point.name: (point.kind, point.parent.name if point.parent else None,
                            [(d.target, d.volume, d.checksum) for d in point.disks.all()])
               for point in RestorePoint.objects.filter(domain_uuid=domain.uuid)}
    assert rebuilt == expected
