"""Workers killed in the middle of the restores issue 18's proof had not covered yet: a restore as a new
VM on the point's own host, a restore in place (on the point's host, and onto a VM that moved to
another host), and one disk attached to a running VM on another host. After the sweep has failed the
operation and its clean-ups have run, nothing half-written is left anywhere: no new volume, no
temporary flat copy, no VM, no attached disk; an in-place restore's VM still has its old disks, whole
(a restore in place writes new volumes and switches the VM to them only once they are complete); and
the same restore, run again, succeeds.

Real harness libvirtds over TCP: host A holds the VM's 384 MiB disk of random bytes and its backup, so
each copy runs long enough to be caught midway; host B (its pool `restores`) is where the VM moved to,
for the cross-host cases."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import libvirt
import pytest
from lxml import etree

from backups.handlers_scratch import MAKING, REPLACING, scratch_cleanup_enqueue
from backups.models import AttachedBackupDisk, RestorePoint
from backups.restores import attach_enqueue, restore_in_place_enqueue
from backups.services import backup_enqueue, restore_enqueue
from domains.models import Domain
from inventory.reconcile import host_reconcile
from operations.choices import OperationState
from operations.models import Operation
from storage.models import StoragePool
from tests import stack
from tests.backups.images import MIB, random_qcow2
from tests.backups.test_copies import identical, on_disk
from tests.backups.test_scratch_cleanup import two_hosts_big_disk  # noqa: F401  (a fixture)
from tests.backups.test_scratch_cleanup import (killed_midway, point_of, pool_files, run_to_the_end, swept_cleanups,
                                                volumes)
from tests.guests import TEST_GUEST_PREFIX, small_guest_xml
from virt import backup_copies

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
IMAGES = "/var/lib/libvirt/images"


@pytest.fixture
def hosts(two_hosts_big_disk, tmp_path):
    """two_hosts_big_disk (the shut-off VM on A with its 384 MiB disk of random bytes in `disks`, A's
    backup pool, B's pool `restores`), and a folder for copies of disks to compare with."""
    return {**two_hosts_big_disk, "tmp": tmp_path}


@pytest.fixture
def doomed_queue(settings, redis_ready):
    """A queue only the worker each test kills listens on (the clean-ups queued there are run here)."""
    settings.OPERATIONS_QUEUE = f"restore-killed-{uuid.uuid4().hex[:6]}"
    return settings.OPERATIONS_QUEUE


def backed_up(env) -> RestorePoint:
    return point_of(backup_enqueue(domain=env["vm"], user=None,
                                   pool=StoragePool.objects.get(host=env["host_a"], name=env["backups"])))


def point_file(env, point: RestorePoint) -> Path:
    return on_disk(env["a"], f"{IMAGES}/{env['backups']}/{point.disks.get().volume}")


def moved_to_b(env, guests, *, running: bool) -> tuple[libvirt.virDomain, Domain]:
    """The VM as if it had migrated to B since its backup: the same UUID, undefined on A, defined on B
    with its disk (32 MiB of other random bytes) in B's pool; running with ACPI (PCI hot-plug) or shut off."""
    path = f"{IMAGES}/{env['restores']}/data.qcow2"
    random_qcow2(on_disk(env["b"], path), 32 * MIB)
    env["conn_b"].storagePoolLookupByName(env["restores"]).refresh(0)
    xml = etree.fromstring(small_guest_xml(env["vm"].name, disk_path=path))
    etree.SubElement(xml, "uuid").text = str(env["vm"].uuid)
    etree.SubElement(etree.SubElement(xml, "features"), "acpi")
    env["handle"].undefine()
    domain = env["conn_b"].defineXML(etree.tostring(xml, encoding="unicode"))
    guests.uuids.append((env["b"].tcp_uri, domain.UUIDString()))
    if running:
        domain.create()
    host_reconcile(host=env["host_a"])
    host_reconcile(host=env["host_b"])
    return domain, Domain.objects.get(host=env["host_b"], uuid=domain.UUIDString())


def start_doomed_worker(stack_log_dir, queue: str):
    return stack.start_worker("doomed-restore-worker", log_dir=stack_log_dir, queues=queue, concurrency=1)


def disk_file(harness_host, domain: libvirt.virDomain, target: str = "vda") -> Path:
    """Where the VM's definition says its disk `target` is, as a path of this machine."""
    xml = etree.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    (source,) = xml.xpath(f"devices/disk[target/@dev='{target}']/source/@file")
    return on_disk(harness_host, source)


def saved(path: Path, tmp_path: Path) -> Path:
    copy = tmp_path / f"old-{path.name}"
    shutil.copy(path, copy)
    return copy


def being_written(harness_host, pool_name: str, kept: set[str], old_file: Path, old_inode: int):
    """A condition, true once the restore writes a disk of the VM: a file that was not in the pool
    appears, or the VM's disk file was removed or made anew (an overwrite in place)."""
    def reached() -> bool:
        try:
            replaced = old_file.stat().st_ino != old_inode
        except FileNotFoundError:
            replaced = True
        return replaced or bool(pool_files(harness_host, pool_name) - kept)

    return reached


def test_a_restore_as_a_new_vm_on_the_points_host_whose_worker_is_killed_leaves_nothing_and_runs_again(
        hosts, guests, doomed_queue, stack_log_dir, settings):
    env = hosts
    point = backed_up(env)
    kept_disks, kept_backups = volumes(env["conn_a"], env["disks"]), volumes(env["conn_a"], env["backups"])
    name = f"{TEST_GUEST_PREFIX}killed-{uuid.uuid4().hex[:6]}"
    guests.created.append((env["a"].tcp_uri, name))
    pool = StoragePool.objects.get(host=env["host_a"], name=env["disks"])

    worker = start_doomed_worker(stack_log_dir, doomed_queue)
    restore = restore_enqueue(point=point, user=None, name=name, pool=pool)
    new_volume = f"{name}-vda.qcow2"
    killed_midway(restore, worker, lambda: new_volume in pool_files(env["a"], env["disks"]),
                  "libvirt to start writing the new VM's disk")
    restore.refresh_from_db()
    assert restore.arguments[MAKING] == [new_volume]  # recorded before it was made

    (cleanup,) = swept_cleanups(restore, settings)  # libvirt may still be writing it: the clean-up waits
    assert f"volume {new_volume}" in cleanup.message, cleanup.message
    assert volumes(env["conn_a"], env["disks"]) == kept_disks
    assert volumes(env["conn_a"], env["backups"]) == kept_backups  # the point's own files stay
    with pytest.raises(libvirt.libvirtError):
        env["conn_a"].lookupByName(name)

    again = restore_enqueue(point=point, user=None, name=name, pool=pool)
    run_to_the_end(again)
    assert again.state == OperationState.SUCCEEDED, again.error
    assert identical(on_disk(env["a"], f"{IMAGES}/{env['disks']}/{new_volume}"), point_file(env, point))
    assert Domain.objects.filter(host=env["host_a"], name=name).exists()


def _in_place_killed_then_again(env, domain: libvirt.virDomain, row: Domain, harness_host, pool_name: str,
                                point: RestorePoint, stack_log_dir, queue: str, settings) -> None:
    """Kill the worker of an in-place restore once it writes the VM's disk; after the sweep the VM has
    its old disk, whole, and nothing else is left on either host; then the restore, run again, works."""
    conn = libvirt.open(harness_host.tcp_uri)
    old_file = disk_file(harness_host, domain)
    old_copy = saved(old_file, env["tmp"])
    kept_vm_pool, kept_backups = volumes(conn, pool_name), volumes(env["conn_a"], env["backups"])

    worker = start_doomed_worker(stack_log_dir, queue)
    restore = restore_in_place_enqueue(domain=row, point=point, user=None)
    kept_files = pool_files(harness_host, pool_name)
    killed_midway(restore, worker, being_written(harness_host, pool_name, kept_files, old_file, old_file.stat().st_ino),
                  "the restore to write the VM's disk")
    restore.refresh_from_db()
    (swap,) = restore.arguments[REPLACING]  # recorded before it was made
    assert (swap["disk"], swap["pool"], swap["old"]) == ("vda", pool_name, old_file.name), swap
    assert swap["new"] in volumes(conn, pool_name)

    cleanups = swept_cleanups(restore, settings)
    assert {cleanup.host_id for cleanup in cleanups} >= {row.host_id}
    assert disk_file(harness_host, domain) == old_file  # the VM was not switched to the half-written copy
    assert identical(old_file, old_copy), "the VM's own disk was changed by the killed restore"
    assert volumes(conn, pool_name) == kept_vm_pool
    assert volumes(env["conn_a"], env["backups"]) == kept_backups  # no temporary flat copy; the point stays
    temporary = backup_copies.scratch_prefix(f"op{restore.pk}")
    assert not [name for name in volumes(env["conn_a"], env["backups"]) if name.startswith(temporary)]

    again = restore_in_place_enqueue(domain=row, point=point, user=None)
    run_to_the_end(again)
    assert again.state == OperationState.SUCCEEDED, again.error
    restored = disk_file(harness_host, domain)
    assert restored != old_file and not old_file.exists()  # switched, and the old volume deleted
    assert identical(restored, point_file(env, point))
    assert volumes(conn, pool_name) == kept_vm_pool - {old_file.name} | {restored.name}


def test_an_in_place_restore_on_the_points_host_whose_worker_is_killed_keeps_the_old_disk_whole(
        hosts, doomed_queue, stack_log_dir, settings):
    env = hosts
    point = backed_up(env)
    random_qcow2(on_disk(env["a"], env["disk_path"]), 384 * MIB)  # the disk changed since its backup
    assert not identical(on_disk(env["a"], env["disk_path"]), point_file(env, point))
    _in_place_killed_then_again(env, env["handle"], env["vm"], env["a"], env["disks"], point, stack_log_dir,
                                doomed_queue, settings)


def test_an_in_place_restore_from_another_host_whose_worker_is_killed_keeps_the_old_disk_whole(
        hosts, guests, doomed_queue, stack_log_dir, settings):
    env = hosts
    point = backed_up(env)
    domain, row = moved_to_b(env, guests, running=False)
    _in_place_killed_then_again(env, domain, row, env["b"], env["restores"], point, stack_log_dir, doomed_queue,
                                settings)


def test_an_attach_from_another_host_whose_worker_is_killed_leaves_nothing_attached(
        hosts, guests, doomed_queue, stack_log_dir, settings):
    env = hosts
    point = backed_up(env)
    domain, row = moved_to_b(env, guests, running=True)
    kept_vm_pool, kept_backups = volumes(env["conn_b"], env["restores"]), volumes(env["conn_a"], env["backups"])
    live_disks = etree.fromstring(domain.XMLDesc(0)).xpath("devices/disk/target/@dev")

    worker = start_doomed_worker(stack_log_dir, doomed_queue)
    attach = attach_enqueue(domain=row, point=point, disk="vda",
                            pool=StoragePool.objects.get(host=env["host_b"], name=env["restores"]), user=None)
    name = f"{row.name}-backup-{point.name}-vda.qcow2"
    killed_midway(attach, worker, lambda: name in pool_files(env["b"], env["restores"]),
                  "the copy to stream into the VM's pool")
    attach.refresh_from_db()
    assert attach.arguments[MAKING] == [name]  # recorded before it was made

    cleanups = swept_cleanups(attach, settings)
    assert {cleanup.host_id for cleanup in cleanups} == {env["host_a"].pk, env["host_b"].pk}
    assert volumes(env["conn_b"], env["restores"]) == kept_vm_pool
    assert volumes(env["conn_a"], env["backups"]) == kept_backups
    assert domain.isActive()
    assert etree.fromstring(domain.XMLDesc(0)).xpath("devices/disk/target/@dev") == live_disks
    assert not AttachedBackupDisk.objects.filter(domain=row).exists()


def test_an_in_place_restore_that_had_switched_the_vm_is_finished_by_its_clean_up(hosts):
    """Killed after the switch (the definition names the new volume), before the old one went: the
    clean-up deletes the old volume and keeps the new one; the other way round before the switch."""
    env = hosts
    pool = env["conn_a"].storagePoolLookupByName(env["disks"])
    for name in ("data-restored-op1.qcow2", "other-restored-op1.qcow2"):
        pool.createXML(f"<volume><name>{name}</name><capacity>1048576</capacity>"
                       "<target><format type='qcow2'/></target></volume>", 0)
    xml = etree.fromstring(env["handle"].XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    xml.find("devices/disk/source").set("file", f"{IMAGES}/{env['disks']}/data-restored-op1.qcow2")
    env["conn_a"].defineXML(etree.tostring(xml, encoding="unicode"))
    after = Operation.objects.create(kind="backup.restore_in_place", target_type="domain", target_id=env["vm"].pk,
                                     arguments={REPLACING: [
                                         {"disk": "vda", "pool": env["disks"], "old": "data.qcow2",
                                          "new": "data-restored-op1.qcow2", "format": "qcow2"}]})
    cleanup = scratch_cleanup_enqueue(host=env["host_a"], pool_name=env["disks"], after=after,
                                      replacing=after.arguments[REPLACING], vm_uuid=str(env["vm"].uuid))
    run_to_the_end(cleanup)
    assert cleanup.state == OperationState.SUCCEEDED, cleanup.error
    assert "volume data.qcow2" in cleanup.message, cleanup.message
    assert volumes(env["conn_a"], env["disks"]) == {"data-restored-op1.qcow2", "other-restored-op1.qcow2"}

    # Not switched (the VM names data-restored-op1, not other-restored-op1): the new one goes.
    after.arguments = {REPLACING: [{"disk": "vda", "pool": env["disks"], "old": "data-restored-op1.qcow2",
                                    "new": "other-restored-op1.qcow2", "format": "qcow2"}]}
    after.save()
    cleanup = scratch_cleanup_enqueue(host=env["host_a"], pool_name=env["disks"], after=after,
                                      replacing=after.arguments[REPLACING], vm_uuid=str(env["vm"].uuid))
    run_to_the_end(cleanup)
    assert cleanup.state == OperationState.SUCCEEDED, cleanup.error
    assert volumes(env["conn_a"], env["disks"]) == {"data-restored-op1.qcow2"}
