"""Which live messages a socket may receive: accounts.access decides; this module applies it."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from accounts.access import is_admin, live_scope


def may_watch_inventory(user: AbstractBaseUser) -> bool:
    return bool(user.is_authenticated and user.is_active)


def visible_scope(user: AbstractBaseUser) -> dict[int, set[int] | None]:
    return live_scope(user) if may_watch_inventory(user) else {}


def live_scopes(user: AbstractBaseUser) -> tuple[bool, dict[int, set[int] | None]]:
    """(sees everything, host id -> None or the VM ids it may see there), read once per socket at
    connect and again on every `host` message, never per message."""
    return is_admin(user), visible_scope(user)


def socket_wants(message: dict, *, everything: bool, scope_by_host: dict[int, set[int] | None]) -> bool:
    """Whether a socket with this scope may receive `message` (no database work: called per socket)."""
    host_id = message.get("id") if message.get("type") == "host" else message.get("host")
    if host_id is None or everything:
        return True
    return host_id in scope_by_host and message_visible(message, scope_by_host[host_id])


def message_visible(message: dict, allowed: set[int] | None) -> bool:
    """A message about a host the socket may see in part (some of its VMs): only about those VMs."""
    if allowed is None:
        return True
    if message.get("type") == "domain":
        return message.get("id") in allowed
    if message.get("type") == "operation":
        kind, _, target_id = str(message.get("target", "")).partition(":")
        return kind == "domain" and target_id.isdigit() and int(target_id) in allowed
    # No content beyond "something changed here": the pages of the VMs it may see re-read themselves.
    return message.get("type") in ("metrics", "host", "inventory")
