"""The frame every operation handler runs in (operations/frame.py), against a real libvirtd on a
harness host: it finds the target's row, connects to its host, finds the libvirt object, reports,
times the handler's own work, and stores the object as libvirt has it now, whatever happened."""
from __future__ import annotations

import uuid

import libvirt
import pytest
from django.utils import timezone

from hosts.models import Host
from inventory.reconcile import host_reconcile
from hosts.targets import CONNECTED_HOST, HOST
from operations import services
from operations.choices import OperationState
from operations.frame import Target, operation_frame
from operations.models import Operation
from operations.tasks import run_operation
from storage.handlers import POOL
from storage.models import StoragePool
from virt import storage as virt_storage
from virt.errors import HostUnavailable, NotFound, OperationInvalid

POOL_NAME = "vmsite-frame"
POOL_XML = (f"<pool type='dir'><name>{POOL_NAME}</name>"
            f"<target><path>/var/lib/libvirt/images/{POOL_NAME}</path></target></pool>")


class Reports(list):
    """A report callback that keeps what it was told."""

    def __call__(self, progress: int, message: str = "") -> None:
        self.append((progress, message))


@pytest.fixture(scope="module")
def remote(harness):
    """A harness host with a persistent dir pool (its folder is the host's own private one)."""
    host = harness()
    pool = libvirt.open(host.tcp_uri).storagePoolDefineXML(POOL_XML, 0)
    pool.build(0)
    return host


@pytest.fixture
def pool_row(remote, redis_ready) -> StoragePool:
    """The pool, started, as a reconcile stored it."""
    pool = libvirt.open(remote.tcp_uri).storagePoolLookupByName(POOL_NAME)
    if not pool.isActive():
        pool.create(0)
    host = Host.objects.create(name=f"frame-{remote.index}", transport="tcp", address=remote.address)
    host_reconcile(host=host)
    row = StoragePool.objects.get(host=host, name=POOL_NAME)
    assert row.active
    return row


def running(target, kind: str = "pool.refresh") -> Operation:
    operation = Operation.objects.create(kind=kind, target_type=target._meta.model_name, target_id=target.pk,
                                         target_label=str(target), host=getattr(target, "host", target))
    assert services.operation_claim(operation_id=operation.pk, worker="test")
    return operation


def fresh(row):
    return type(row).objects.filter(pk=row.pk).first()


@pytest.mark.django_db(transaction=True)
def test_it_finds_the_target_connects_reports_times_the_work_and_stores_the_outcome(pool_row):
    operation, reports = running(pool_row), Reports()
    with operation_frame(operation, reports, POOL, label="Stop") as frame:
        assert frame.row == pool_row and frame.conn is not None
        message = virt_storage.stop_pool(frame.handle)  # the handle is the pool on the harness host
    assert message == "Stopped"
    assert reports == [(10, f"Stop: {POOL_NAME}")]
    assert not fresh(pool_row).active  # stored as libvirt has it now
    assert fresh(operation).libvirt_ms is not None


@pytest.mark.django_db(transaction=True)
def test_it_stores_the_object_and_records_the_time_when_the_work_fails(pool_row):
    operation = running(pool_row)
    with pytest.raises(OperationInvalid, match="after the stop"):
        with operation_frame(operation, Reports(), POOL) as frame:
            virt_storage.stop_pool(frame.handle)
            raise OperationInvalid("Something went wrong after the stop.")
    assert not fresh(pool_row).active
    assert fresh(operation).libvirt_ms is not None


@pytest.mark.django_db(transaction=True)
def test_the_handlers_stores_run_first_and_one_that_meets_a_libvirt_error_gives_up_quietly(pool_row):
    seen = []

    def meets_an_error(frame) -> None:
        virt_storage.lookup_pool(frame.conn, str(uuid.uuid4()))  # libvirt answers: no such pool

    def looks(frame) -> None:
        seen.append(("row active", fresh(frame.row).active))

    with operation_frame(running(pool_row), Reports(), POOL, stores=(meets_an_error, looks)) as frame:
        result = virt_storage.stop_pool(frame.handle)
    assert result == "Stopped"
    assert seen == [("row active", True)]  # before the target's own store ran
    assert not fresh(pool_row).active  # ... which ran after the failed one


@pytest.mark.django_db(transaction=True)
def test_when_the_object_is_gone_from_its_host_the_work_does_not_run_and_nothing_is_stored(pool_row):
    ghost = StoragePool.objects.create(host=pool_row.host, uuid=uuid.uuid4(), name="ghost", pool_type="dir",
                                       synced_at=timezone.now())
    operation, reports = running(ghost), Reports()
    with pytest.raises(NotFound, match="no longer exists"):
        with operation_frame(operation, reports, POOL, label="Stop"):
            pytest.fail("the handler's work ran without its object")
    assert reports == [] and fresh(ghost) is not None  # a store would have removed the row
    assert fresh(operation).libvirt_ms is None


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_host_stops_the_frame_before_the_work(redis_ready):
    host = Host.objects.create(name="unreachable", transport="tcp", address="127.0.0.1", port=1)
    with pytest.raises(HostUnavailable):
        with operation_frame(running(host, kind="pool.discover"), Reports(), CONNECTED_HOST):
            pytest.fail("the handler's work ran without a connection")


@pytest.mark.django_db(transaction=True)
def test_a_registered_handler_runs_in_the_frame_through_the_worker_task(pool_row):
    operation = services.operation_enqueue(kind="pool.stop", target=pool_row, host=pool_row.host, user=None,
                                           queue=False)
    run_operation(operation.pk)
    operation.refresh_from_db()
    assert (operation.state, operation.message) == (OperationState.SUCCEEDED, "Stopped"), operation.error
    assert operation.libvirt_ms is not None
    assert not fresh(pool_row).active


@pytest.mark.django_db
def test_a_target_without_a_session_looks_up_the_row_and_opens_and_times_nothing():
    host = Host.objects.create(name="reconciled", transport="tcp", address="127.0.0.1", port=1)
    operation = Operation.objects.create(kind="host.sync", target_type="host", target_id=host.pk,
                                         target_label=host.name, host=host)
    reports = Reports()
    with operation_frame(operation, reports, HOST, label="Sync") as frame:
        assert frame.row == host and frame.conn is None and frame.handle is None
    assert reports == [(10, "Sync: reconciled")]
    assert fresh(operation).libvirt_ms is None
    with pytest.raises(ValueError, match="need the connection"):
        with operation_frame(operation, reports, HOST, stores=(lambda frame: None,)):
            pytest.fail("the work ran with stores it cannot run")


def test_a_target_without_a_session_cannot_find_or_store_a_libvirt_object():
    with pytest.raises(ValueError, match="no libvirt object"):
        Target(rows=Host.objects.all, store=lambda frame: None)
    with pytest.raises(ValueError, match="no libvirt object"):
        Target(rows=Host.objects.all, find=lambda conn, host: None)
