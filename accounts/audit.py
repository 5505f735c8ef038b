"""Recording audit events: one call, from views and signal receivers, never from templates."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest

from accounts.models import AuditEvent


def client_address(request: HttpRequest | None) -> str | None:
    """The peer's address as the server saw it. Behind a proxy, the proxy must be trusted to set
    REMOTE_ADDR (see README, production settings); X-Forwarded-For is never read here."""
    return request.META.get("REMOTE_ADDR") or None if request is not None else None


def audit(request: HttpRequest | None, action: str, *, target: str = "", result: str = "ok", detail: str = "",
          user: AbstractBaseUser | None = None, username: str = "", address: str | None = None) -> AuditEvent:
    if user is None and request is not None and getattr(request, "user", None) is not None \
            and request.user.is_authenticated:
        user = request.user
    return AuditEvent.objects.create(
        user=user, username=(username or (user.get_username() if user is not None else ""))[:150],
        address=address or client_address(request), action=action, target=target[:255], result=result, detail=detail[:500])
