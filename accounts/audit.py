"""Recording audit events: one call, from views and signal receivers, never from templates."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest

from accounts.addresses import request_address, valid_address
from accounts.models import AuditEvent


def audit(request: HttpRequest | None, action: str, *, target: str = "", result: str = "ok", detail: str = "",
          user: AbstractBaseUser | None = None, username: str = "", address: str | None = None) -> AuditEvent:
    """Records the event. The address is the request's client address (accounts/addresses.py)
    unless given; anything that is not an IP address is recorded as no address."""
    if user is None and request is not None and getattr(request, "user", None) is not None \
            and request.user.is_authenticated:
        user = request.user
    return AuditEvent.objects.create(
        user=user, username=(username or (user.get_username() if user is not None else ""))[:150],
        address=valid_address(address or request_address(request)), action=action, target=target[:255],
        result=result, detail=detail[:500])
