"""A chain that goes on across a live migration, with the suite's real guest, between two harness
hosts: host A over TCP, host B over SSH (qemu+ssh with vmsite's own key, so this test is also the
backup and restore against an SSH host). The backup pool is one folder both hosts define as a dir
pool of the same name, as an NFS pool would be; the guest's disk is copied by the migration
(the harness hosts have no shared storage that libvirt accepts as safe for a live migration).

A live migration over an NFS pool is not tested: this machine's kernel has no NFS at all (no nfs,
nfs4 or nfsd in /proc/filesystems, no CONFIG_NFS_FS, CONFIG_NFSD or CONFIG_SUNRPC in
/proc/config.gz, no loadable modules: no modprobe, no /lib/modules), so neither Debian's
nfs-kernel-server can serve nor a netfs pool can mount; a user-space server (Debian's nfs-ganesha)
would have no kernel client to mount it either.

Full on A, incremental on A, migrate to B (the checkpoints are redefined there and QEMU carries
the bitmaps in the migration stream), incremental on B continuing the chain, restore of that last
point on B into a new VM whose disk holds exactly what the guest had: including a change written on
A after A's last backup, which only a bitmap carried from A to B can have recorded. Then a disk added to the VM:
the next backup starts a new full chain and says why."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import libvirt
import pytest
from django.urls import reverse
from lxml import etree

from backups.models import RestorePoint
from domains.models import Domain
from hosts.services import installation_ssh_key
from inventory.reconcile import host_reconcile
from operations.choices import OperationState
from operations.models import Operation
from tests.backups.test_proof import back_up, finished, write
from tests.domains.test_migration import migrated, watch
from tests.guests import TEST_GUEST_PREFIX
from tests.hosts.test_registration import connect_result, register
from tests.realguest import GuestShell
from virt.storage import pool_volume_create
from virt.xml.domain import Disk

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DISK_MIB = 32
READ = f"dd if=/dev/vda bs=1M count={DISK_MIB} 2>/dev/null | sha256sum"
SHARED = Path("/srv")  # outside /var/lib/libvirt, which each harness host has a private copy of


def _pool(uri: str, name: str, path: str) -> libvirt.virStoragePool:
    xml = etree.Element("pool", type="dir")
    etree.SubElement(xml, "name").text = name
    etree.SubElement(etree.SubElement(xml, "target"), "path").text = path
    return libvirt.open(uri).storagePoolCreateXML(etree.tostring(xml, encoding="unicode"),
                                                  libvirt.VIR_STORAGE_POOL_CREATE_WITH_BUILD)


def _remove_pool(uri: str, name: str) -> None:
    try:
        pool = libvirt.open(uri).storagePoolLookupByName(name)
        pool.refresh(0)
        for volume in pool.listAllVolumes(0):
            volume.delete(0)
        pool.destroy()
    except libvirt.libvirtError:
        pass  # never made, or gone with its host


@pytest.fixture
def two_hosts(harness, celery_worker, admin_client):
    """Host A (TCP) and host B (SSH), registered and connected; on each, a disk pool at the same
    private path and the shared backup pool."""
    source, destination = harness(), harness()
    destination.authorize_ssh_key(installation_ssh_key().public_key)
    suffix = uuid.uuid4().hex[:8]
    names = {"disks": f"{TEST_GUEST_PREFIX}bkm-disks-{suffix}", "backups": f"{TEST_GUEST_PREFIX}bkm-backups-{suffix}"}
    shared = SHARED / names["backups"]
    shared.mkdir(mode=0o755)
    for harness_host in (source, destination):
        _pool(harness_host.tcp_uri, names["disks"], f"/var/lib/libvirt/images/{names['disks']}")
        _pool(harness_host.tcp_uri, names["backups"], str(shared))
    host_a = register(admin_client, name=f"bk-a-{source.index}", transport="tcp", address=source.address)
    host_b = register(admin_client, name=f"bk-b-{destination.index}", transport="ssh", address=destination.address,
                      username="root")
    for host in (host_a, host_b):
        assert connect_result(host).state == OperationState.SUCCEEDED
    yield {"a": (source, host_a), "b": (destination, host_b), **names}
    for harness_host in (source, destination):
        for name in names.values():
            _remove_pool(harness_host.tcp_uri, name)
    shutil.rmtree(shared, ignore_errors=True)


def _attach(domain: libvirt.virDomain, path: str, target: str, flags: int) -> None:
    disk = Disk.new()
    disk.type, disk.device = "file", "disk"
    disk.driver_name, disk.driver_type = "qemu", "qcow2"
    disk.source_file = path
    disk.target_dev, disk.target_bus = target, "virtio"
    domain.attachDeviceFlags(disk.to_xml(), flags)


def _drop_checkpoint_metadata(uri: str, uuid_string: str) -> None:
    try:
        domain = libvirt.open(uri).lookupByUUIDString(uuid_string)
    except libvirt.libvirtError:
        return
    for checkpoint in domain.listAllCheckpoints(0):
        checkpoint.delete(libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)


def test_a_chain_goes_on_across_a_live_migration_to_an_ssh_host_and_restores_there(two_hosts, guests,
                                                                                    admin_client):
    (source, host_a), (destination, host_b) = two_hosts["a"], two_hosts["b"]
    disks_a = libvirt.open(source.tcp_uri).storagePoolLookupByName(two_hosts["disks"])
    volume = pool_volume_create(disks_a, name="data.qcow2", capacity=DISK_MIB * 2**20, allocation=None, fmt="qcow2")
    guest = guests.real(source.tcp_uri, start=False, vnc_listen=source.address)
    guests.uuids.append((destination.tcp_uri, guest.uuid))  # removed from wherever it ends up
    _attach(guest.domain, volume.path(), "vda", libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    guest.start()
    try:
        _chain_across_migration(two_hosts, guest, guests, admin_client, host_a, host_b, destination)
    finally:
        _drop_checkpoint_metadata(destination.tcp_uri, guest.uuid)
        _drop_checkpoint_metadata(source.tcp_uri, guest.uuid)


def _chain_across_migration(two_hosts, guest, guests, admin_client, host_a, host_b, destination) -> None:
    backups = two_hosts["backups"]
    host_reconcile(host=host_a)
    domain = Domain.objects.get(host=host_a, uuid=guest.uuid)
    digests, points = [], []
    for region in (0, 3):
        digests.append(write(guest, region))
        points.append(back_up(admin_client, domain, backups)[1])
    assert [point.kind for point in points] == ["full", "incremental"]
    write(guest, 5)  # on A after its last backup: only the bitmap that came along knows of it

    operation = migrated(admin_client, domain, host_b, live="on", copy_storage="on")
    watch(operation, timeout=300)
    assert operation.state == OperationState.SUCCEEDED, operation.error
    assert "2 checkpoints redefined" in operation.message, operation.message
    guest.follow_to(destination.tcp_uri)
    domain.refresh_from_db()
    assert domain.host == host_b
    host_reconcile(host=host_b)  # B's pools, for the forms

    digests.append(write(guest, 0))  # on B; overwrites what the full backup holds
    operation, last = back_up(admin_client, domain, backups)
    assert (last.kind, last.parent, last.host, last.note) == ("incremental", points[1], host_b, ""), last.note
    assert last.chain == points[0].chain and last.disks.get().size < 4 * 2**20

    name = f"{TEST_GUEST_PREFIX}restored-{uuid.uuid4().hex[:6]}"
    response = admin_client.post(reverse("backups:restore", args=[domain.pk, last.pk]),
                                 {"name": name, "pool": two_hosts["disks"]})
    assert response.status_code == 302, response.content.decode()[:2000]
    restore = finished(Operation.objects.filter(kind="backup.restore").latest("created_at"))
    assert "from 3 file(s) whose checksums matched the catalogue" in restore.message, restore.message
    restored = libvirt.open(destination.tcp_uri).lookupByName(name)
    guests.uuids.append((destination.tcp_uri, restored.UUIDString()))
    restored.create()
    shell = GuestShell(destination.tcp_uri, restored.UUIDString())
    guests.shells.append(shell)
    shell.wait_ready()
    assert shell.run(READ).split()[0] == digests[-1], "the disk restored on B differs from the guest's"
    shell.close()
    restored.destroy()

    # A disk added since: never an incremental on a wrong base, a new chain and why.
    disks_b = libvirt.open(destination.tcp_uri).storagePoolLookupByName(two_hosts["disks"])
    extra = pool_volume_create(disks_b, name="extra.qcow2", capacity=4 * 2**20, allocation=None, fmt="qcow2")
    _attach(guest.domain, extra.path(), "vdb", libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    _, fresh = back_up(admin_client, domain, backups)
    assert fresh.kind == "full" and fresh.chain != last.chain
    assert "The VM's disks changed since the previous backup (vda then, vda, vdb now)" in fresh.note, fresh.note
    assert RestorePoint.objects.filter(domain_uuid=domain.uuid).count() == 4
