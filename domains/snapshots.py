"""Writes for snapshots, clones and templates: queuing their operations through
`domain_action_enqueue` (so a VM still runs one operation at a time). What the handlers read back is
stored by domains/sync.py."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from domains.models import Domain
from domains.services import domain_action_enqueue
from operations.models import Operation


def snapshot_create(*, domain: Domain, user: AbstractBaseUser | None, name: str, description: str = "",
                    with_memory: bool) -> Operation:
    """Queue taking an internal snapshot."""
    return domain_action_enqueue(domain=domain, action="snapshot_create", user=user,
                                 arguments={"name": name, "description": description, "with_memory": with_memory})


def snapshot_revert(*, domain: Domain, user: AbstractBaseUser | None, name: str) -> Operation:
    return domain_action_enqueue(domain=domain, action="snapshot_revert", user=user, arguments={"name": name})


def snapshot_delete(*, domain: Domain, user: AbstractBaseUser | None, name: str,
                    with_children: bool = False) -> Operation:
    return domain_action_enqueue(domain=domain, action="snapshot_delete", user=user,
                                 arguments={"name": name, "with_children": with_children})


def snapshots_refresh(*, domain: Domain, user: AbstractBaseUser | None) -> Operation:
    """Queue a re-read of the snapshot tree (for snapshots taken outside vmsite)."""
    return domain_action_enqueue(domain=domain, action="snapshot_refresh", user=user)


def domain_clone(*, domain: Domain, user: AbstractBaseUser | None, name: str) -> Operation:
    """Queue a full clone (also how a VM is created from a template)."""
    return domain_action_enqueue(domain=domain, action="clone", user=user, arguments={"name": name})


def domain_template_mark(*, domain: Domain, user: AbstractBaseUser | None, template: bool) -> Operation:
    """Queue marking the VM as a template (template=True) or unmarking it."""
    return domain_action_enqueue(domain=domain, action="mark_template", user=user,
                                 arguments={"template": template})
