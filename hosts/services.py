"""Writes on hosts and their cached inventory."""
from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from domains.models import Domain
from hosts.choices import HostStatus, Transport
from hosts.models import Host
from operations.models import Operation
from operations.services import operation_enqueue
from virt.inventory import DomainSummary, HostFacts

LOCAL_HOST_NAME = "local"


def host_register_local(*, name: str = LOCAL_HOST_NAME) -> tuple[Host, bool]:
    """The host vmsite runs on, reached as qemu:///system. Safe to call again."""
    existing = Host.objects.filter(transport=Transport.LOCAL).first()
    if existing is not None:
        return existing, False
    return Host.objects.create(name=name, transport=Transport.LOCAL), True


def host_sync_enqueue(*, host: Host, user: AbstractBaseUser | None) -> Operation:
    return operation_enqueue(kind="host.sync", target=host, host=host, user=user)


@transaction.atomic
def host_apply_inventory(*, host: Host, facts: HostFacts, domains: Iterable[DomainSummary]) -> dict[str, int]:
    """Make the Domain table equal to what the host reported: a diff of new, gone and changed."""
    now = timezone.now()
    reported = {summary.uuid: summary for summary in domains}
    cached = {domain.uuid: domain for domain in Domain.objects.filter(host=host)}

    gone = [domain.pk for uuid, domain in cached.items() if uuid not in reported]
    Domain.objects.filter(pk__in=gone).delete()
    new = [_new_domain(host, summary, now) for uuid, summary in reported.items() if uuid not in cached]
    Domain.objects.bulk_create(new)
    changed = [_changed(cached[uuid], summary) for uuid, summary in reported.items() if uuid in cached]
    changed = [domain for domain in changed if domain is not None]
    for domain in changed:
        Domain.objects.filter(pk=domain.pk).update(
            name=domain.name, state=domain.state, state_reason=domain.state_reason, vcpus=domain.vcpus,
            memory_kib=domain.memory_kib, seq=F("seq") + 1,
        )
    Domain.objects.filter(host=host).update(synced_at=now)
    _mark_online(host, facts, now)
    return {"new": len(new), "gone": len(gone), "changed": len(changed), "total": len(reported)}


def host_mark_offline(*, host: Host, reason: str) -> None:
    Host.objects.filter(pk=host.pk).update(status=HostStatus.OFFLINE, status_reason=reason[:500])


_SYNCED_FIELDS = ("name", "state", "state_reason", "vcpus", "memory_kib")


def _new_domain(host: Host, summary: DomainSummary, now) -> Domain:
    return Domain(
        host=host, uuid=summary.uuid, name=summary.name, state=summary.state, state_reason=summary.reason,
        vcpus=summary.vcpus, memory_kib=summary.memory_kib, synced_at=now,
    )


def _changed(domain: Domain, summary: DomainSummary) -> Domain | None:
    values = {"name": summary.name, "state": summary.state, "state_reason": summary.reason,
              "vcpus": summary.vcpus, "memory_kib": summary.memory_kib}
    if all(getattr(domain, field) == values[field] for field in _SYNCED_FIELDS):
        return None
    for field, value in values.items():
        setattr(domain, field, value)
    return domain


def _mark_online(host: Host, facts: HostFacts, now) -> None:
    Host.objects.filter(pk=host.pk).update(
        status=HostStatus.ONLINE, status_reason="", last_seen=now, synced_at=now, hostname=facts.hostname[:255],
        libvirt_version=facts.libvirt_version, hypervisor_version=facts.hypervisor_version,
    )
