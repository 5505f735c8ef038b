"""Which hosts' live messages a user may receive. The one place the live path asks; the pages'
own checks and this one must agree (issue 9 adds per-host and per-VM grants here)."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from hosts.models import Host


def may_watch_inventory(user: AbstractBaseUser) -> bool:
    return bool(user.is_authenticated and user.is_active and
                (user.is_superuser or user.has_perm("hosts.view_host") or user.has_perm("domains.view_domain")))


def visible_host_ids(user: AbstractBaseUser) -> list[int]:
    if not may_watch_inventory(user):
        return []
    return list(Host.objects.values_list("pk", flat=True))
