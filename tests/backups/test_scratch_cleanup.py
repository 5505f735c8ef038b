"""Workers killed in the middle of a health check and of a restore onto another host: what each had
made for a while (the temporary VM's qcow2 overlays in the backup pool; the flat copy beside the
chain, and the new VM's half-written volume on the other host) is removed once the sweep has failed
the operation: it queues `backup.scratch_cleanup` (backups/handlers_scratch.py), which removes
exactly the names the operation made (named from the operation, or recorded before they were made),
and nothing else in those pools."""
from __future__ import annotations

import os
import uuid
from datetime import timedelta

import libvirt
import pytest
from django.utils import timezone
from lxml import etree

from backups.handlers_scratch import MAKING, scratch_cleanup_enqueue
from backups.models import RestorePoint
from backups.restores import restore_elsewhere_enqueue
from backups.services import backup_enqueue, health_check_enqueue
from domains.models import Domain
from hosts.models import Host
from inventory.reconcile import host_reconcile
from operations import services as operation_services
from operations.choices import OperationState
from operations.models import Operation
from operations.tasks import run_operation
from storage.models import StoragePool
from tests import stack
from tests.backups.images import MIB, random_qcow2
from tests.backups.test_copies import _dir_pool, on_disk
from tests.backups.test_interrupted import guest_with_data, remove_checkpoints  # noqa: F401  (a fixture)
from tests.guests import TEST_GUEST_PREFIX
from tests.storage.conftest import remove_pool
from virt import backup_copies, healthcheck
from virt.xml.base import parse_trusted
from virt.xml.domain import Domain as DomainXML
from virt.xml.domain import GUEST_AGENT_CHANNEL

LOCAL = "qemu:///system"
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def pool_files(harness_host, pool_name: str) -> set[str]:
    """The files in a harness host's dir pool, read on this machine: a poll that makes no libvirt
    call. (A pool refresh over TCP, on a loaded machine, took long enough to miss a whole copy.)"""
    return set(os.listdir(on_disk(harness_host, f"/var/lib/libvirt/images/{pool_name}")))


def volumes(conn: libvirt.virConnect, pool_name: str) -> set[str]:
    pool = conn.storagePoolLookupByName(pool_name)
    try:
        pool.refresh(0)
    except libvirt.libvirtError as exc:  # a copy into the pool is running: its volume is listed already
        if "asynchronous jobs running" not in str(exc):
            raise
    return set(pool.listVolumes())


def run_to_the_end(operation: Operation) -> None:
    """Run the operation here, as a worker would; if a worker this test session started has taken it
    from the queue first, wait for that worker to finish it."""
    run_operation(operation.pk)
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=120,
                     message=f"operation {operation.pk} ({operation.kind}) to finish")
    operation.refresh_from_db()


def point_of(operation: Operation) -> RestorePoint:
    run_to_the_end(operation)
    assert operation.state == OperationState.SUCCEEDED, operation.error
    return RestorePoint.objects.get(domain_uuid=Domain.objects.get(pk=operation.target_id).uuid)


def killed_midway(operation: Operation, worker, reached, message: str) -> None:
    """Wait until reached() (the work is midway), then kill the worker that runs the operation."""
    try:
        stack.wait_until(reached, timeout=180, interval=0.01, message=message)
        worker.kill()
    finally:
        worker.stop()
    operation.refresh_from_db()
    assert not operation.is_finished


def swept_cleanups(operation: Operation, settings) -> list[Operation]:
    """The sweep, a heartbeat timeout later: the operation failed, and the clean-ups it queued, each
    run here as a worker would, succeeded."""
    later = timezone.now() + timedelta(seconds=settings.OPERATION_HEARTBEAT_TIMEOUT + 1)
    assert operation_services.operations_sweep(now=later) >= 1
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED and "stopped responding" in operation.error
    cleanups = list(Operation.objects.filter(kind="backup.scratch_cleanup", arguments__after=operation.pk))
    for cleanup in cleanups:
        run_to_the_end(cleanup)
        assert cleanup.state == OperationState.SUCCEEDED, cleanup.error
    return cleanups


def test_a_health_check_whose_worker_is_killed_leaves_no_overlay_and_no_vm(
        redis_ready, local_host, guests, scratch_pool, backup_pool, stack_log_dir, settings, remove_checkpoints):
    settings.OPERATIONS_QUEUE = f"hc-kill-{uuid.uuid4().hex[:6]}"  # only the worker this test kills listens here
    domain = guest_with_data(guests, scratch_pool, 16)
    remove_checkpoints(domain)
    host_reconcile(host=local_host)
    row = Domain.objects.get(host=local_host, uuid=domain.UUIDString())
    point = point_of(backup_enqueue(domain=row, user=None,
                                    pool=StoragePool.objects.get(host=local_host, name=backup_pool.name)))
    # As if the VM had a guest agent channel: the check boots it and waits for an agent that never answers.
    root = parse_trusted(point.domain_xml)
    channel = etree.SubElement(root.find("devices"), "channel", type="unix")
    etree.SubElement(channel, "target", type="virtio", name=GUEST_AGENT_CHANNEL)
    RestorePoint.objects.filter(pk=point.pk).update(domain_xml=DomainXML(root).to_xml())
    kept = volumes(backup_pool.conn, backup_pool.name)

    worker = stack.start_worker("doomed-health-worker", log_dir=stack_log_dir, queues=settings.OPERATIONS_QUEUE,
                                concurrency=1)
    check = health_check_enqueue(point=point, user=None)
    prefix = healthcheck.scratch_prefix(f"op{check.pk}")
    killed_midway(check, worker, lambda: "waiting for the guest agent" in Operation.objects.get(pk=check.pk).message,
                  "the temporary VM to wait for its agent")
    overlays = volumes(backup_pool.conn, backup_pool.name) - kept
    assert overlays and all(name.startswith(prefix) for name in overlays), overlays

    (cleanup,) = swept_cleanups(check, settings)
    assert "volume " + sorted(overlays)[0] in cleanup.message, cleanup.message
    assert volumes(backup_pool.conn, backup_pool.name) == kept  # the point's own files stay
    assert not [d.name() for d in backup_pool.conn.listAllDomains(0) if d.name().startswith(prefix)]


@pytest.fixture
def two_hosts_big_disk(harness, guests):
    """Harness host A with a shut-off small guest whose disk is 384 MiB of random bytes and a backup
    pool; harness host B with a pool for restores. Both registered."""
    a, b = harness(), harness()
    suffix = uuid.uuid4().hex[:8]
    conn_a, conn_b = libvirt.open(a.tcp_uri), libvirt.open(b.tcp_uri)
    names = {"disks": f"vmsite-test-kdisks-{suffix}", "backups": f"vmsite-test-kbackups-{suffix}",
             "restores": f"vmsite-test-krestores-{suffix}"}
    disks = _dir_pool(conn_a, names["disks"])
    _dir_pool(conn_a, names["backups"])
    _dir_pool(conn_b, names["restores"])
    disk_path = f"/var/lib/libvirt/images/{names['disks']}/data.qcow2"
    random_qcow2(on_disk(a, disk_path), 384 * MIB)
    disks.refresh(0)
    domain = guests.define(a.tcp_uri, disk_path=disk_path)
    hosts = [Host.objects.create(name=f"kill-{role}-{suffix}", transport="tcp", address=harness_host.address)
             for role, harness_host in (("a", a), ("b", b))]
    for host in hosts:
        host_reconcile(host=host)
    yield {"a": a, "b": b, "host_a": hosts[0], "host_b": hosts[1], "conn_a": conn_a, "conn_b": conn_b,
           "handle": domain, "disk_path": disk_path,
           "vm": Domain.objects.get(host=hosts[0], uuid=domain.UUIDString()), **names}
    guests.cleanup()
    for uri, pool_names in ((a.tcp_uri, ("backups", "disks")), (b.tcp_uri, ("restores",))):
        for key in pool_names:
            remove_pool(uri, names[key])


def test_a_restore_onto_another_host_whose_worker_is_killed_leaves_nothing_on_either(
        two_hosts_big_disk, redis_ready, stack_log_dir, settings):
    env = two_hosts_big_disk
    settings.OPERATIONS_QUEUE = f"restore-kill-{uuid.uuid4().hex[:6]}"
    point = point_of(backup_enqueue(domain=env["vm"], user=None,
                                    pool=StoragePool.objects.get(host=env["host_a"], name=env["backups"])))
    kept_a, kept_b = volumes(env["conn_a"], env["backups"]), volumes(env["conn_b"], env["restores"])
    name = f"{TEST_GUEST_PREFIX}killed-{uuid.uuid4().hex[:6]}"

    worker = stack.start_worker("doomed-restore-worker", log_dir=stack_log_dir, queues=settings.OPERATIONS_QUEUE,
                                concurrency=1)
    restore = restore_elsewhere_enqueue(point=point, user=None, name=name,
                                        pool=StoragePool.objects.get(host=env["host_b"], name=env["restores"]))
    new_volume = f"{name}-vda.qcow2"
    killed_midway(restore, worker, lambda: new_volume in pool_files(env["b"], env["restores"]),
                  "the copy to stream into the other host's pool")
    restore.refresh_from_db()
    assert restore.arguments[MAKING] == [new_volume]  # recorded before it was made
    temporary = volumes(env["conn_a"], env["backups"]) - kept_a
    prefix = backup_copies.scratch_prefix(f"op{restore.pk}")
    assert temporary and all(name.startswith(prefix) for name in temporary), temporary
    assert volumes(env["conn_b"], env["restores"]) - kept_b == {new_volume}

    cleanups = swept_cleanups(restore, settings)
    assert {cleanup.host_id for cleanup in cleanups} == {env["host_a"].pk, env["host_b"].pk}
    assert volumes(env["conn_a"], env["backups"]) == kept_a  # the point's own files stay
    assert volumes(env["conn_b"], env["restores"]) == kept_b
    with pytest.raises(libvirt.libvirtError):
        env["conn_b"].lookupByName(name)


def test_a_restores_volumes_are_kept_when_it_had_defined_its_vm(two_hosts_big_disk, settings):
    """The clean-up of a restore that got as far as defining its VM leaves the VM's disks alone."""
    env = two_hosts_big_disk
    host_b = env["host_b"]
    pool = env["conn_b"].storagePoolLookupByName(env["restores"])
    name = f"{TEST_GUEST_PREFIX}defined-{uuid.uuid4().hex[:6]}"
    pool.createXML(f"<volume><name>{name}-vda.qcow2</name><capacity>1048576</capacity></volume>", 0)
    env["conn_b"].defineXML(f"<domain type='qemu'><name>{name}</name><memory>32768</memory><os><type>hvm</type></os>"
                            "</domain>")
    try:
        after = Operation.objects.create(kind="backup.restore_elsewhere", target_type="restorepoint", target_id=0,
                                         arguments={"name": name, "host": host_b.pk, "pool": env["restores"],
                                                    MAKING: [f"{name}-vda.qcow2"]})
        cleanup = scratch_cleanup_enqueue(host=host_b, pool_name=env["restores"], volumes=after.arguments[MAKING],
                                          unless_vm=name, after=after)
        run_to_the_end(cleanup)
        assert cleanup.state == OperationState.SUCCEEDED and "had left nothing" in cleanup.message, cleanup.message
        assert f"{name}-vda.qcow2" in volumes(env["conn_b"], env["restores"])
    finally:
        env["conn_b"].lookupByName(name).undefine()
