"""Storing what a host says of itself: its facts when it answers (and that it is online), or why
it does not (offline, or in error when an administrator must act)."""
from __future__ import annotations

from datetime import datetime

from django.db import transaction

from events.publish import publish_host
from hosts.cached import ColumnMap
from hosts.choices import HostStatus
from hosts.models import Host
from virt.inventory import HostFacts

HOST_FACT_COLUMNS = ColumnMap(Host, {name: name for name in (
    "hostname", "libvirt_version", "hypervisor_version", "cpu_count", "memory_kib", "capabilities")})

# Reasons (virt.errors.HostUnavailableReason) that only an administrator can mend: the host is in
# error, not offline.
CREDENTIAL_FAILURES = ("host key changed", "auth failed", "TLS failed", "permission denied by polkit")


def unreachable_status(reason: str) -> str:
    """ERROR for a failure about credentials (an admin must act), OFFLINE for one about reachability."""
    return HostStatus.ERROR if reason.startswith(CREDENTIAL_FAILURES) else HostStatus.OFFLINE


def host_mark_online(*, host: Host, facts: HostFacts | None, now: datetime) -> None:
    """The host answered a whole read at `now`; facts (None: not read this time) are stored."""
    was_online = Host.objects.filter(pk=host.pk, status=HostStatus.ONLINE).exists()
    values = HOST_FACT_COLUMNS.values(facts) if facts is not None else {}
    if "hostname" in values:
        values["hostname"] = values["hostname"][:255]
    Host.objects.filter(pk=host.pk).update(status=HostStatus.ONLINE, status_reason="", last_seen=now, synced_at=now,
                                           **values)
    if not was_online:
        transaction.on_commit(lambda: publish_host(host_id=host.pk))


def host_mark_unreachable(*, host: Host, reason: str, status: str = HostStatus.OFFLINE) -> None:
    if Host.objects.filter(pk=host.pk).exclude(status=status, status_reason=reason[:500]).update(
            status=status, status_reason=reason[:500]):
        publish_host(host_id=host.pk)
