"""Which live messages a socket may receive: accounts.access decides; this module applies it."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from accounts.access import live_scope


def may_watch_inventory(user: AbstractBaseUser) -> bool:
    return bool(user.is_authenticated and user.is_active)


def visible_scope(user: AbstractBaseUser) -> dict[int, set[int] | None]:
    return live_scope(user) if may_watch_inventory(user) else {}


def message_visible(message: dict, allowed: set[int] | None) -> bool:
    """A message about a host the socket may see in part (some of its VMs): only about those VMs."""
    if allowed is None:
        return True
    if message.get("type") == "domain":
        return message.get("id") in allowed
    if message.get("type") == "operation":
        kind, _, target_id = str(message.get("target", "")).partition(":")
        return kind == "domain" and target_id.isdigit() and int(target_id) in allowed
    return message.get("type") in ("metrics", "host")  # no content beyond "something changed"
