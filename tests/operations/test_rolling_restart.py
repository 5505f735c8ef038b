"""A rolling restart of workers (issue 19): SIGTERM to a real Celery worker's main process, as
systemd's `KillMode=mixed` sends it (deploy/systemd/vmsite-worker.service), and a new worker
started meanwhile. The operation the old one is running finishes before it exits (warm shutdown),
and the one it had taken from the queue but not started goes back to the queue and runs once, on
the new worker. Past the unit's
TimeoutStopSec the worker is killed and the sweep fails what it left running (tests/domains/
test_lifecycle.py, "worker was killed mid operation"): nothing stays "running"."""
from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from domains.services import domain_action_enqueue
from hosts.models import Host
from hosts.services import host_register_local, host_sync_enqueue
from operations.choices import OperationState
from operations.models import Operation
from tests import stack
from tests.domains.helpers import LOCAL, cached

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
QUEUE = "rolling-restart"


def state(operation: Operation) -> str:
    return Operation.objects.get(pk=operation.pk).state


def test_sigterm_lets_the_running_operation_finish_and_hands_back_the_one_not_started(
        local_libvirt, guests, redis_ready, stack_log_dir, settings):
    settings.OPERATIONS_QUEUE = QUEUE  # only this test's workers listen here
    with ThreadPoolExecutor(max_workers=1) as starting:  # the worker starts while the guest does
        worker_started = starting.submit(stack.start_worker, "rolling-old", log_dir=stack_log_dir, queues=QUEUE,
                                         concurrency=1)
        try:
            local_host, _ = host_register_local()
            other_host = Host.objects.create(name="other", transport="test", address="default")
            guest = guests.define(LOCAL, start=True)  # no OS: it ignores the ACPI request, the shutdown waits
            domain = cached(local_host, guest)
        finally:
            worker = worker_started.result()
    successor = None
    try:
        running = domain_action_enqueue(domain=domain, action="shutdown", user=None, arguments={"timeout": 60})
        stack.wait_until(lambda: Operation.objects.get(pk=running.pk).progress > 10, timeout=30,
                         message="the shutdown to be waiting for the guest")
        waiting = host_sync_enqueue(host=other_host, user=None)
        stack.wait_until(lambda: redis_ready.llen(QUEUE) == 0, timeout=10,
                         message="the worker to take the second message (prefetched, not started)")

        os.kill(worker.pid, signal.SIGTERM)  # the main process only, as systemd's KillMode=mixed
        successor = stack.start_worker("rolling-new", log_dir=stack_log_dir, queues=QUEUE, concurrency=1)
        assert "warm shutdown" in worker.log().lower()
        assert worker.process.poll() is None and state(running) == OperationState.RUNNING  # it waits for the task
        assert state(waiting) == OperationState.PENDING  # still held by the old worker, not started
        guest.destroy()  # the guest powers off: the shutdown it was waiting for is over
        asked = time.monotonic()
        worker.process.wait(timeout=30)
        exited_after = time.monotonic() - asked
        finished = Operation.objects.get(pk=running.pk)
        assert (finished.state, finished.message) == (OperationState.SUCCEEDED, "Shut down")
        stack.wait_until(lambda: state(waiting) == OperationState.SUCCEEDED, timeout=30,
                         message="the next worker to run the operation handed back")
        handed_back_after = time.monotonic() - asked
    finally:
        worker.stop()
        if successor is not None:
            successor.stop()
    assert Operation.objects.get(pk=waiting.pk).worker.startswith("rolling-new@")
    assert "already claimed or finished" not in successor.log() + worker.log()  # it ran once
    print(f"rolling restart: the old worker exited {exited_after:.1f} s after its last operation could end; "
          f"the operation it handed back ran on the new one {handed_back_after:.1f} s after")
    assert exited_after < 10 and handed_back_after < 15
