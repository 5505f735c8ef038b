"""Writes on VMs: queuing their operations (one at a time per VM), and storing what libvirt says."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from domains.actions import ACTIONS, FORM_ACTIONS
from domains.identity import domain_gone
from domains.models import Domain
from events.publish import publish_domain
from operations.choices import OperationState
from operations.models import Operation
from operations.services import operation_enqueue
from virt.domains import LiveDomain


class DomainBusy(Exception):
    """Another operation on this VM has not finished yet."""


class ActionNotAllowed(Exception):
    pass


def domain_busy_with(domain: Domain) -> Operation | None:
    return (Operation.objects.filter(target_type="domain", target_id=domain.pk,
                                     state__in=[OperationState.PENDING, OperationState.RUNNING])
            .order_by("created_at").first())


@transaction.atomic
def domain_action_enqueue(*, domain: Domain, action: str, user: AbstractBaseUser | None,
                          arguments: dict[str, Any] | None = None) -> Operation:
    """Queue one lifecycle action. Refused while another operation on the VM is unfinished."""
    if action not in ACTIONS and action not in FORM_ACTIONS:
        raise ActionNotAllowed(f"Unknown action {action!r}.")
    if action in ("start", "start_paused") and domain.is_template:
        raise ActionNotAllowed(f"{domain.name} is a template: unmark it before starting it, or create a VM from it.")
    # Lock the VM's row (PostgreSQL; SQLite serialises writers anyway) so that two requests
    # cannot both find it idle.
    Domain.objects.select_for_update().filter(pk=domain.pk).first()
    busy = domain_busy_with(domain)
    if busy is not None:
        raise DomainBusy(f"busy: {busy.kind} #{busy.pk} is {busy.get_state_display().lower()}; "
                         "try again when it has finished")
    return operation_enqueue(kind=f"domain.{action}", target=domain, host=domain.host, user=user,
                             arguments=arguments or {})


def domain_bulk_enqueue(*, domains: list[Domain], action: str, user: AbstractBaseUser | None
                        ) -> tuple[list[Operation], list[str]]:
    """One operation per VM; VMs that are busy are skipped and named."""
    queued, skipped = [], []
    for domain in domains:
        try:
            queued.append(domain_action_enqueue(domain=domain, action=action, user=user))
        except (DomainBusy, ActionNotAllowed) as exc:
            skipped.append(f"{domain.name}: {exc}")
    return queued, skipped


def domain_apply_state(*, domain_id: int, live: LiveDomain | None) -> None:
    """Store what libvirt says of one VM now (None: it is gone from its host), and tell open pages."""
    row = Domain.objects.filter(pk=domain_id).values_list("host_id", "seq").first()
    if row is None:
        return
    host_id, seq = row
    if live is None:
        domain_gone(domain_id)
        return
    Domain.objects.filter(pk=domain_id).update(
        name=live.name, state=live.state, state_reason=live.reason, vcpus=live.vcpus, memory_kib=live.memory_kib,
        persistent=live.persistent, autostart=live.autostart, has_managed_save=live.has_managed_save,
        details=live.details, synced_at=timezone.now(), seq=F("seq") + 1,
    )
    # The row's seq may have moved on meanwhile; a page that sees a jump fetches a fresh copy anyway.
    publish_domain(domain_id=domain_id, host_id=host_id, seq=seq + 1, state=live.state, change="changed")


def domain_apply_run_state(*, domain_id: int, state: int, reason: int) -> None:
    """Store a VM's new run state alone (after a pause or a resume, nothing else changed), and tell
    open pages."""
    row = Domain.objects.filter(pk=domain_id).values_list("host_id", "seq").first()
    if row is None:
        return
    host_id, seq = row
    Domain.objects.filter(pk=domain_id).update(state=state, state_reason=reason, synced_at=timezone.now(),
                                               seq=F("seq") + 1)
    publish_domain(domain_id=domain_id, host_id=host_id, seq=seq + 1, state=state, change="changed")


def domain_id_for(*, host_id: int, uuid: str) -> int | None:
    return Domain.objects.filter(host_id=host_id, uuid=uuid).values_list("pk", flat=True).first()
