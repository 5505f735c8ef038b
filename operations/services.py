"""Writes on Operation rows. Every state change is a conditional UPDATE, so that two workers, a
late duplicate delivery and the sweep can race and still leave one consistent answer."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import current_app
from kombu.exceptions import OperationalError as QueueError
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from events.publish import publish_operation
from operations.choices import OperationState
from operations.models import Operation
from operations.registry import after_sweep_for, handler_for
from vmsite.outages import redis_down

logger = logging.getLogger(__name__)
OPERATION_TASK = "operations.run"  # the one task that runs any kind (operations/tasks.py)

MESSAGE_LIMIT = Operation._meta.get_field("message").max_length


class OperationBusy(Exception):
    """Another operation on the same object has not finished yet (one at a time per object)."""

    def __init__(self, busy: Operation, target: models.Model) -> None:
        super().__init__(f"busy: {busy.kind} #{busy.pk} is {busy.get_state_display().lower()}; "
                         "try again when it has finished")
        self.operation, self.target = busy, target


def operation_busy_with(target: models.Model) -> Operation | None:
    """The oldest unfinished operation on `target`, if any."""
    return (Operation.objects.filter(target_type=target._meta.model_name, target_id=target.pk,
                                     state__in=[OperationState.PENDING, OperationState.RUNNING])
            .order_by("created_at").first())


def operation_enqueue(
    *,
    kind: str,
    target: models.Model,
    user: AbstractBaseUser | None,
    host=None,
    arguments: dict[str, Any] | None = None,
    exclusive: bool = False,
    check: Callable[[Any], None] | None = None,
    label: str | None = None,
    result_url: str = "",
    result_label: str = "",
    queue: bool = True,
) -> Operation:
    """Save the operation, then queue its task once the row is committed.

    exclusive: refuse (OperationBusy) while another operation on `target` is unfinished; the
    target's row is locked first, so two requests cannot both find it idle. `check` then gets the
    row as read under that lock and raises to refuse what its current state does not allow.
    result_url, result_label: the page the operation's page links to (operation_record_result).
    queue=False: the web process claims and runs the operation itself (uploads)."""
    if queue:
        handler_for(kind)  # an unknown kind is a programming error: fail before anything is saved
    with transaction.atomic():
        if exclusive:
            # PostgreSQL locks the row; SQLite runs IMMEDIATE transactions, one writer at a time.
            locked = type(target).objects.select_for_update().filter(pk=target.pk).first()
            busy = operation_busy_with(target)
            if busy is not None:
                raise OperationBusy(busy, target)
            if check is not None:
                check(locked if locked is not None else target)
        operation = Operation.objects.create(
            kind=kind,
            target_type=target._meta.model_name,
            target_id=target.pk,
            target_label=(label or str(target))[:255],
            result_url=result_url,
            result_label=result_label[:255],
            host=host,
            user=user if user is not None and user.is_authenticated else None,
            arguments=arguments or {},
        )
    # Announced before it is queued: a quick worker could otherwise claim it first, and the
    # "pending" message would read the row as running (two messages with one sequence number).
    transaction.on_commit(lambda: announce(operation.pk))
    if queue:
        transaction.on_commit(lambda: operation_queue(operation_id=operation.pk))
    logger.info("operation %s saved: %s on %s", operation.pk, kind, operation.target_label)
    return operation


NOT_QUEUED = "Not queued: Redis was unreachable, nothing was done"


def operation_queue(*, operation_id: int) -> None:
    """Hand the operation's task to the queue and note when. If the queue cannot take it, the
    operation is cancelled (it never ran, and no one is told it was accepted) and
    ServiceUnavailable says why: an action is reported accepted only once it is queued."""
    try:
        _send(operation_id)
    except QueueError as exc:
        logger.warning("operation %s not queued: %s", operation_id, exc)
        if Operation.objects.filter(pk=operation_id, state=OperationState.PENDING).update(
                state=OperationState.CANCELLED, message=NOT_QUEUED, error=str(exc), finished_at=timezone.now(),
                seq=F("seq") + 1):
            announce(operation_id)
        raise redis_down("the action was not queued and nothing was done; try again when Redis is back.") from exc
    Operation.objects.filter(pk=operation_id, state=OperationState.PENDING).update(queued_at=timezone.now())


def _send(operation_id: int) -> None:
    # By the task's name (operations/tasks.py), which imports this module.
    current_app.send_task(OPERATION_TASK, (operation_id,), queue=settings.OPERATIONS_QUEUE)


def operation_claim(*, operation_id: int, worker: str) -> bool:
    """Move a pending operation to running. Only one caller ever gets True."""
    now = timezone.now()
    claimed = Operation.objects.filter(pk=operation_id, state=OperationState.PENDING).update(
        state=OperationState.RUNNING, started_at=now, heartbeat_at=now, worker=worker[:255], seq=F("seq") + 1
    )
    if claimed:
        announce(operation_id)
    return claimed == 1


def operation_report(*, operation_id: int, progress: int, message: str = "") -> None:
    progress = max(0, min(100, int(progress)))
    if Operation.objects.filter(pk=operation_id, state=OperationState.RUNNING).update(
        progress=progress, message=message[:MESSAGE_LIMIT], heartbeat_at=timezone.now(), seq=F("seq") + 1
    ):
        announce(operation_id)


def operation_record_libvirt_time(*, operation_id: int, milliseconds: float) -> None:
    Operation.objects.filter(pk=operation_id).update(libvirt_ms=max(0, round(milliseconds)))


def operation_record_result(*, operation_id: int, result_url: str, result_label: str) -> None:
    """The operation's page links to `result_url` ("Open <result_label>"): what it made, once that
    has a page."""
    Operation.objects.filter(pk=operation_id).update(result_url=result_url, result_label=result_label[:255])


def operation_remember(*, operation_id: int, key: str, value: Any) -> None:
    """Keep `value` under `key` in the operation's arguments before the handler acts on it: what the
    sweep's follow-up of a handler whose worker died (registry.after_sweep) reads to undo its work."""
    with transaction.atomic():
        arguments = Operation.objects.select_for_update().values_list("arguments", flat=True).get(pk=operation_id)
        Operation.objects.filter(pk=operation_id).update(arguments={**arguments, key: value})


def operation_heartbeat(*, operation_id: int) -> None:
    Operation.objects.filter(pk=operation_id, state=OperationState.RUNNING).update(heartbeat_at=timezone.now())


def operation_succeed(*, operation_id: int, message: str = "") -> bool:
    return _finish(operation_id, OperationState.SUCCEEDED, message=message, error="", progress=100)


def operation_fail(*, operation_id: int, error: str, message: str = "") -> bool:
    return _finish(operation_id, OperationState.FAILED, message=message or "Failed", error=error)


def _finish(operation_id: int, state: str, *, message: str, error: str, progress: int | None = None) -> bool:
    values: dict[str, Any] = {"state": state, "message": message[:MESSAGE_LIMIT], "error": error, "finished_at": timezone.now()}
    if progress is not None:
        values["progress"] = progress
    values["seq"] = F("seq") + 1
    finished = Operation.objects.filter(pk=operation_id, state=OperationState.RUNNING).update(**values) == 1
    if finished:
        announce(operation_id)
    return finished


def operation_cancel(*, operation: Operation) -> bool:
    """Cancel an operation that no worker has claimed yet; a running one cannot be taken back here."""
    cancelled = Operation.objects.filter(pk=operation.pk, state=OperationState.PENDING).update(
        state=OperationState.CANCELLED, message="Cancelled before it started", finished_at=timezone.now(),
        seq=F("seq") + 1) == 1
    if cancelled:
        announce(operation.pk)
    return cancelled


# Kinds whose handler polls `cancel_requested` while it runs and stops midway.
CANCELLABLE_KINDS = frozenset({"domain.migrate", "backup.create"})


def operation_request_cancel(*, operation: Operation, user: AbstractBaseUser | None) -> bool:
    """Cancel a pending operation at once, or ask a running one that can stop midway to stop.
    False when it has finished already or cannot be stopped."""
    if operation_cancel(operation=operation):
        return True
    if operation.kind not in CANCELLABLE_KINDS:
        return False
    by = user.get_username() if user is not None and user.is_authenticated else "system"
    requested = Operation.objects.filter(pk=operation.pk, state=OperationState.RUNNING).update(
        cancel_requested=True, arguments={**operation.arguments, "cancel_requested_by": by}, seq=F("seq") + 1) == 1
    if requested:
        announce(operation.pk)
    return requested


def operations_sweep(*, now=None) -> int:
    """Fail running operations whose worker has stopped sending heartbeats (killed, host lost)."""
    now = now or timezone.now()
    deadline = now - timedelta(seconds=settings.OPERATION_HEARTBEAT_TIMEOUT)
    swept = 0
    for operation in Operation.objects.filter(state=OperationState.RUNNING, heartbeat_at__lt=deadline):
        error = (
            f"The worker {operation.worker or '(unknown)'} stopped responding: no heartbeat since "
            f"{operation.heartbeat_at:%Y-%m-%d %H:%M:%S %Z}. It was probably killed or lost its host; "
            "check the VM's state before running the operation again."
        )
        finished = (
            Operation.objects.filter(pk=operation.pk, state=OperationState.RUNNING, heartbeat_at=operation.heartbeat_at)
            .update(state=OperationState.FAILED, message="Worker lost", error=error, finished_at=now, seq=F("seq") + 1)
        )
        if finished:
            announce(operation.pk)
            logger.warning("operation %s swept: %s", operation.pk, error)
            swept += 1
            follow_up = after_sweep_for(operation.kind)
            if follow_up is not None:
                follow_up(operation)
    return swept


def operations_requeue_lost(*, now=None) -> int:
    """Send again the task of each operation still pending OPERATION_REQUEUE_AFTER seconds after
    its message was sent: the message may be lost (Redis restarted, a worker died holding it).
    Each resend is claimed first by a conditional UPDATE of queued_at, so two sweeps never both
    send; a message that was not lost after all does no harm, as only one delivery wins the claim
    (operation_claim) and runs it. Rows never sent (queued_at None: the web process runs it
    itself, or its send failed and cancelled it) are not this function's."""
    now = now or timezone.now()
    deadline = now - timedelta(seconds=settings.OPERATION_REQUEUE_AFTER)
    requeued = 0
    for operation_id, queued_at in Operation.objects.filter(
            state=OperationState.PENDING, queued_at__lt=deadline).values_list("pk", "queued_at"):
        if Operation.objects.filter(pk=operation_id, state=OperationState.PENDING, queued_at=queued_at).update(
                queued_at=now):
            _send(operation_id)  # the queue answers now (this runs in a task): an error is the sweep's
            logger.warning("operation %s queued again: not claimed since %s", operation_id, queued_at)
            requeued += 1
    return requeued


def announce(operation_id: int) -> None:
    """Tell the pages that may see it that the operation moved (state, progress, result)."""
    row = (Operation.objects.filter(pk=operation_id)
           .values_list("host_id", "seq", "state", "progress", "target_type", "target_id").first())
    if row is not None:
        host_id, seq, state, progress, target_type, target_id = row
        publish_operation(operation_id=operation_id, host_id=host_id, seq=seq, state=state, progress=progress,
                          target=f"{target_type}:{target_id}")
