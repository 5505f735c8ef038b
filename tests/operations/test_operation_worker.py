"""Operations through a real Celery worker and a real Redis broker."""
import socket
import threading
import time

import pytest

from hosts.models import Host
from operations import services
from operations.choices import OperationState
from operations.models import Operation
from tests import stack

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for_state(operation: Operation, *states: str, timeout: float = 30) -> Operation:
    def finished():
        operation.refresh_from_db()
        return operation.state in states

    stack.wait_until(finished, timeout=timeout, message=f"operation {operation.pk} to reach {states}")
    return operation


def test_it_records_the_error_text_when_the_task_fails(celery_worker):
    closed_port = stack.free_port()
    host = Host.objects.create(name="refusing", transport="tcp", address="127.0.0.1", port=closed_port)
    operation = services.operation_enqueue(kind="host.sync", target=host, host=host, user=None)
    wait_for_state(operation, OperationState.FAILED, OperationState.SUCCEEDED)
    assert operation.state == OperationState.FAILED
    assert "Connection refused" in operation.error
    assert operation.started_at <= operation.finished_at
    host.refresh_from_db()
    assert host.status == "offline" and "Connection refused" in host.status_reason


class BlackHole:
    """A TCP port that accepts connections and never answers: a host that hangs."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        for connection in self.accepted:
            connection.close()
        self.server.close()


def test_it_sweeps_an_operation_whose_worker_was_killed(redis_ready, local_libvirt, stack_log_dir, settings):
    settings.OPERATIONS_QUEUE = "sweep-test"  # only the worker this test kills listens here
    hole = BlackHole()
    worker = stack.start_worker("doomed-worker", log_dir=stack_log_dir, queues="sweep-test", concurrency=1)
    try:
        host = Host.objects.create(name="hanging", transport="tcp", address="127.0.0.1", port=hole.port)
        operation = services.operation_enqueue(kind="host.sync", target=host, host=host, user=None)
        wait_for_state(operation, OperationState.RUNNING)
        stack.wait_until(lambda: hole.accepted, timeout=10, message="the worker to reach the host")
        worker.kill()
        assert services.operations_sweep() == 0  # its heartbeat is still recent
        killed_at = time.monotonic()
        stack.wait_until(lambda: services.operations_sweep() == 1, timeout=settings.OPERATION_HEARTBEAT_TIMEOUT + 10,
                         interval=0.25, message="the sweep to fail the silent operation")
        assert time.monotonic() - killed_at >= settings.OPERATION_HEARTBEAT_TIMEOUT - settings.OPERATION_HEARTBEAT_INTERVAL
        operation.refresh_from_db()
        assert operation.state == OperationState.FAILED
        assert "stopped responding" in operation.error and "doomed-worker" in operation.error
    finally:
        worker.stop()
        hole.close()
