"""The frame around every operation handler's own work.

Around what is its own, every handler does the same: it finds the operation's target row, opens a
connection to the host the target lives on, finds the libvirt object, says what it is doing,
times its libvirt work (`Operation.libvirt_ms` tells a slow host from a slow vmsite) and, whatever
happened, stores the object as libvirt has it now. `operation_frame` does all of that; an app
declares each kind of target once (a `Target`), and a handler holds only its own work:

    with operation_frame(operation, report, VOLUME, label="Resize") as frame:
        return virt_storage.resize_volume(frame.handle, capacity=..., shrink=...)

`operations/` sits below the apps that own the targets and the hosts, so a Target says how to
reach its host (`hosts.connection.host_session`); this module imports neither.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import models

from operations.models import Operation
from operations.registry import Report
from operations.services import operation_record_libvirt_time
from virt.errors import VirtError
from virt.types import Connection

logger = logging.getLogger(__name__)

RowT = TypeVar("RowT", bound=models.Model)

Store = Callable[["Frame[Any]"], None]


@dataclass(frozen=True)
class Target(Generic[RowT]):
    """One kind of object that operations act on, as the frame needs to know it."""

    rows: Callable[[], models.QuerySet]  # where the operation's target_id is found
    # A connection to the row's host for the frame's life; None: the work opens its own (a reconcile).
    session: Callable[[RowT], AbstractContextManager[Connection]] | None = None
    find: Callable[[Connection, RowT], Any] | None = None  # the libvirt object, through virt/
    store: Store | None = None  # stores the object as libvirt has it now, whatever happened

    def __post_init__(self) -> None:
        if self.session is None and (self.find is not None or self.store is not None):
            raise ValueError("a target without a session has no libvirt object to find or store")


class Frame(Generic[RowT]):
    """What a handler's own work gets from the frame: the target's row, the connection to its
    host, its libvirt object (`handle`, when the Target finds one) and the progress report."""

    def __init__(self, operation: Operation, report: Report, row: RowT, conn: Connection | None) -> None:
        self.operation = operation
        self.row = row
        self.conn = conn
        self.handle: Any = None
        self._report = report

    @property
    def arguments(self) -> dict:
        return self.operation.arguments

    def report(self, progress: int, message: str = "") -> None:
        self._report(progress, message)


@contextmanager
def operation_frame(operation: Operation, report: Report, target: Target[RowT], *, label: str | None = None,
                    stores: tuple[Store, ...] = ()) -> Iterator[Frame[RowT]]:
    """Find the target's row, connect to its host, find its libvirt object, report `label: row`;
    time the handler's own work (the block) as its time in libvirt; on the way out, whatever
    happened in the block, run `stores`, then the target's own store. A store that meets a
    libvirt error gives up quietly: the host went away mid-action, and the listener and the next
    reconcile catch up. Without a session (the work opens its own), nothing is timed or stored."""
    row = target.rows().get(pk=operation.target_id)
    if target.session is None:
        if stores:
            raise ValueError("stores need the connection of a target with a session")
        yield _opened(Frame(operation, report, row, None), label)
        return
    with target.session(row) as conn:
        frame = Frame(operation, report, row, conn)
        if target.find is not None:
            frame.handle = target.find(conn, row)
        _opened(frame, label)
        started = time.perf_counter()
        try:
            yield frame
        finally:
            operation_record_libvirt_time(operation_id=operation.pk,
                                          milliseconds=(time.perf_counter() - started) * 1000)
            for store in (*stores, *((target.store,) if target.store is not None else ())):
                _quietly(store, frame)


def _opened(frame: Frame[RowT], label: str | None) -> Frame[RowT]:
    if label is not None:
        frame.report(10, f"{label}: {frame.row}")
    return frame


def _quietly(store: Store, frame: Frame[Any]) -> None:
    try:
        store(frame)
    except VirtError as exc:
        logger.info("operation %s: storing %s after the action failed: %s", frame.operation.pk, frame.row, exc)
