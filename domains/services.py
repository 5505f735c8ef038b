"""Writes on VMs: queuing their operations (one at a time per VM). What libvirt says of a VM is
stored by domains/sync.py."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from domains.actions import ACTIONS, FORM_ACTIONS
from domains.models import Domain
from operations.models import Operation
from operations.services import OperationBusy, operation_enqueue


# One rule for every kind of object: the name stays for the callers that catch it.
DomainBusy = OperationBusy


class ActionNotAllowed(Exception):
    pass


def _allowed_in_state(action: str) -> Callable[[Domain], None]:
    """The refusal of an action the VM's current state does not offer (the same buttons the page shows)."""
    def check(domain: Domain) -> None:
        offered = ACTIONS.get(action)
        if offered is not None and domain.state not in offered.states:
            raise ActionNotAllowed(f"{offered.label} is not possible while {domain.name} is "
                                   f"{domain.get_state_display().lower()}.")
    return check


@transaction.atomic
def domain_action_enqueue(*, domain: Domain, action: str, user: AbstractBaseUser | None,
                          arguments: dict[str, Any] | None = None) -> Operation:
    """Queue one lifecycle action. Refused while another operation on the VM is unfinished, and when
    the VM's state does not allow the action."""
    if action not in ACTIONS and action not in FORM_ACTIONS:
        raise ActionNotAllowed(f"Unknown action {action!r}.")
    if action in ("start", "start_paused") and domain.is_template:
        raise ActionNotAllowed(f"{domain.name} is a template: unmark it before starting it, or create a VM from it.")
    link = {} if action == "delete" else domain.result_link  # a deleted VM's page is its tombstone
    return operation_enqueue(kind=f"domain.{action}", target=domain, host=domain.host, user=user,
                             arguments=arguments or {}, exclusive=True, check=_allowed_in_state(action), **link)


def domain_bulk_enqueue(*, domains: list[Domain], action: str, user: AbstractBaseUser | None
                        ) -> tuple[list[Operation], list[str]]:
    """One operation per VM; VMs that are busy, or whose state refuses the action, are skipped and named."""
    queued, skipped = [], []
    for domain in domains:
        try:
            queued.append(domain_action_enqueue(domain=domain, action=action, user=user))
        except (DomainBusy, ActionNotAllowed) as exc:
            skipped.append(f"{domain.name}: {exc}")
    return queued, skipped
