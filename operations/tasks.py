"""Celery tasks: thin. They take ids, claim the operation, and call its handler."""
from __future__ import annotations

import logging
import os
import socket
import threading

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from operations import services
from operations.models import Operation
from operations.registry import handler_for

logger = logging.getLogger(__name__)


@shared_task(name=services.OPERATION_TASK, bind=True)
def run_operation(self, operation_id: int) -> None:
    worker = f"{self.request.hostname or socket.gethostname()} pid {os.getpid()}"
    if not services.operation_claim(operation_id=operation_id, worker=worker):
        logger.info("operation %s already claimed or finished; nothing to do", operation_id)
        return
    operation = Operation.objects.select_related("host", "user").get(pk=operation_id)
    with _Heartbeat(operation_id):
        try:
            message = handler_for(operation.kind)(operation, _reporter(operation_id)) or "Done"
        except SoftTimeLimitExceeded:
            services.operation_fail(operation_id=operation_id, error="The operation ran past its time limit and was stopped.")
        except Exception as exc:  # the handler's failure is the operation's result, recorded in words
            logger.warning("operation %s failed: %s", operation_id, exc, exc_info=not _is_expected(exc))
            services.operation_fail(operation_id=operation_id, error=_describe(exc))
        else:
            services.operation_succeed(operation_id=operation_id, message=str(message))


@shared_task(name="operations.sweep")
def sweep_operations() -> int:
    """Fail operations whose worker went silent, and send again those whose message was lost."""
    return services.operations_sweep() + services.operations_requeue_lost()


def _reporter(operation_id: int):
    def report(progress: int, message: str = "") -> None:
        services.operation_report(operation_id=operation_id, progress=progress, message=message)

    return report


def _is_expected(exc: Exception) -> bool:
    from virt.errors import VirtError

    return isinstance(exc, VirtError)


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__


class _Heartbeat:
    """Touches the operation's heartbeat from a side thread while the handler runs."""

    def __init__(self, operation_id: int) -> None:
        self.operation_id = operation_id
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{operation_id}", daemon=True)

    def __enter__(self) -> "_Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)

    def _beat(self) -> None:
        try:
            while not self.stopped.wait(settings.OPERATION_HEARTBEAT_INTERVAL):
                close_old_connections()
                try:
                    services.operation_heartbeat(operation_id=self.operation_id)
                except DatabaseError as exc:  # PostgreSQL restarting: beat again once it answers
                    logger.warning("operation %s: heartbeat not written (%s)", self.operation_id, exc)
        finally:
            connection.close()
