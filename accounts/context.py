"""Template flags for what the logged-in user may do in general (object rights come from views)."""
from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from accounts.access import OPERATE, hosts_for, is_admin, operates_anything


def access(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "is_admin": is_admin(user),
        "can_create_vms": SimpleLazyObject(lambda: hosts_for(user, OPERATE).filter(enabled=True).exists()),
        "can_operate_any": SimpleLazyObject(lambda: operates_anything(user)),
    }
