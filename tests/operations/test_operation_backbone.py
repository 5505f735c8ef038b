"""The Operation row's life: claimed once, finished once, swept when its worker dies."""
from datetime import timedelta

import pytest
from django.utils import timezone

from hosts.models import Host
from operations import services
from operations.choices import OperationState
from operations.models import Operation
from operations.tasks import run_operation


@pytest.fixture
def host(db):
    return Host.objects.create(name="unreachable", transport="tcp", address="127.0.0.1", port=1)


def new_operation(host: Host, **fields) -> Operation:
    return Operation.objects.create(kind="host.sync", target_type="host", target_id=host.pk, target_label=host.name,
                                    host=host, **fields)


def test_it_claims_an_operation_only_once(host):
    operation = new_operation(host)
    assert services.operation_claim(operation_id=operation.pk, worker="a") is True
    assert services.operation_claim(operation_id=operation.pk, worker="b") is False
    operation.refresh_from_db()
    assert (operation.state, operation.worker) == (OperationState.RUNNING, "a")
    assert operation.started_at is not None


def test_it_does_nothing_when_a_finished_operation_is_delivered_again(host):
    operation = new_operation(host, state=OperationState.SUCCEEDED, message="done before")
    run_operation(operation.pk)
    operation.refresh_from_db()
    assert (operation.state, operation.message) == (OperationState.SUCCEEDED, "done before")


def test_it_finishes_an_operation_only_once(host):
    operation = new_operation(host)
    services.operation_claim(operation_id=operation.pk, worker="a")
    assert services.operation_succeed(operation_id=operation.pk, message="ok") is True
    assert services.operation_fail(operation_id=operation.pk, error="late") is False
    operation.refresh_from_db()
    assert (operation.state, operation.error, operation.progress) == (OperationState.SUCCEEDED, "", 100)


def test_it_clamps_progress_and_ignores_reports_after_the_end(host):
    operation = new_operation(host)
    services.operation_claim(operation_id=operation.pk, worker="a")
    services.operation_report(operation_id=operation.pk, progress=250, message="x" * 900)
    operation.refresh_from_db()
    assert operation.progress == 100 and len(operation.message) == 500
    services.operation_fail(operation_id=operation.pk, error="boom")
    services.operation_report(operation_id=operation.pk, progress=5, message="too late")
    operation.refresh_from_db()
    assert (operation.state, operation.progress) == (OperationState.FAILED, 100)


def test_it_cancels_only_pending_operations(host):
    pending, running = new_operation(host), new_operation(host)
    services.operation_claim(operation_id=running.pk, worker="a")
    assert services.operation_cancel(operation=pending) is True
    assert services.operation_cancel(operation=running) is False
    run_operation(pending.pk)  # a cancelled operation is never claimed
    pending.refresh_from_db()
    assert pending.state == OperationState.CANCELLED


def test_it_sweeps_only_operations_without_a_recent_heartbeat(host, settings):
    settings.OPERATION_HEARTBEAT_TIMEOUT = 60
    silent, alive = new_operation(host), new_operation(host)
    for operation in (silent, alive):
        services.operation_claim(operation_id=operation.pk, worker="w1")
    Operation.objects.filter(pk=silent.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=61))
    assert services.operations_sweep() == 1
    silent.refresh_from_db()
    alive.refresh_from_db()
    assert silent.state == OperationState.FAILED and "stopped responding" in silent.error
    assert silent.finished_at is not None
    assert alive.state == OperationState.RUNNING


def test_it_refuses_to_enqueue_an_unknown_kind(host):
    with pytest.raises(LookupError):
        services.operation_enqueue(kind="no.such", target=host, user=None)
    assert not Operation.objects.exists()
