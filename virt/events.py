"""libvirt event callbacks, reduced to small records: (object kind, uuid, what happened).

Callbacks run on libvirt's event loop thread and must return at once: they only hand a record to
the sink. Whoever consumes the records refetches the one object named (the event's own payload
is a hint, never the truth: events can be coalesced, lost in an outage, or arrive out of order).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import libvirt

from virt.errors import translated
from virt.types import Connection


@dataclass(frozen=True)
class EventRecord:
    kind: str  # "domain", "pool" or "network"
    uuid: str
    event: str  # "lifecycle", "reboot", "device-added", ...
    detail: int = -1  # lifecycle event number (libvirt's VIR_DOMAIN_EVENT_*), else -1
    # When it reached this process (time.monotonic()): what caused it had happened by then, so a read
    # of the object begun later sees it.
    received: float = field(default_factory=time.monotonic, compare=False)


Sink = Callable[[EventRecord], None]

# Lifecycle events after which a short wait avoids showing a passing state (a fake reboot's stop).
SETTLING_LIFECYCLE = frozenset({libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_SHUTDOWN})
# Lifecycle events that change only the run state (paused, running): reading the state is enough.
STATE_ONLY_LIFECYCLE = frozenset({libvirt.VIR_DOMAIN_EVENT_SUSPENDED, libvirt.VIR_DOMAIN_EVENT_RESUMED})

_DOMAIN_EVENTS: dict[int, str] = {
    libvirt.VIR_DOMAIN_EVENT_ID_REBOOT: "reboot",
    libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED: "device-added",
    libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED: "device-removed",
    libvirt.VIR_DOMAIN_EVENT_ID_TRAY_CHANGE: "tray-change",
    libvirt.VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE: "balloon-change",
    libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE: "metadata-change",
    libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED: "job-completed",
    libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION: "migration-iteration",
    libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2: "block-job",
    libvirt.VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE: "agent-lifecycle",
}


@dataclass
class Registration:
    """The callbacks registered on one connection; deregister() before closing it on purpose."""

    conn: Connection
    domain_ids: list[int] = field(default_factory=list)
    pool_ids: list[int] = field(default_factory=list)
    network_ids: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.domain_ids) + len(self.pool_ids) + len(self.network_ids)

    def deregister(self) -> None:
        for deregister, ids in ((self.conn.domainEventDeregisterAny, self.domain_ids),
                                (self.conn.storagePoolEventDeregisterAny, self.pool_ids),
                                (self.conn.networkEventDeregisterAny, self.network_ids)):
            for callback_id in ids:
                try:
                    deregister(callback_id)
                except libvirt.libvirtError:
                    pass  # the connection is already gone, and its callbacks with it
            ids.clear()


def register_events(conn: Connection, sink: Sink) -> Registration:
    """Register every event vmsite follows on `conn` (once: call it once per new connection)."""
    registration = Registration(conn)
    with translated():
        registration.domain_ids.append(conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
            lambda _c, dom, event, _detail, _opaque: sink(EventRecord("domain", dom.UUIDString(), "lifecycle", event)),
            None))
        for event_id, name in _DOMAIN_EVENTS.items():
            registration.domain_ids.append(conn.domainEventRegisterAny(None, event_id, _domain_callback(sink, name), None))
        registration.pool_ids.append(conn.storagePoolEventRegisterAny(
            None, libvirt.VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE,
            lambda _c, pool, _event, _detail, _opaque: sink(EventRecord("pool", pool.UUIDString(), "lifecycle")), None))
        registration.pool_ids.append(conn.storagePoolEventRegisterAny(
            None, libvirt.VIR_STORAGE_POOL_EVENT_ID_REFRESH,
            lambda _c, pool, _opaque: sink(EventRecord("pool", pool.UUIDString(), "refresh")), None))
        registration.network_ids.append(conn.networkEventRegisterAny(
            None, libvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE,
            lambda _c, net, _event, _detail, _opaque: sink(EventRecord("network", net.UUIDString(), "lifecycle")),
            None))
    return registration


def _domain_callback(sink: Sink, name: str):
    # libvirt calls each event id with its own argument list; only the domain (second) matters here.
    def callback(_conn, dom, *_args) -> None:
        sink(EventRecord("domain", dom.UUIDString(), name))

    return callback
