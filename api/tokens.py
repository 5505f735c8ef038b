"""Making and checking API tokens: `vms_<prefix>_<secret>`, where the prefix finds the row and the
secret (256 random bits) is compared by its SHA-256 in constant time."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils import timezone

from accounts.access import is_admin
from accounts.audit import audit
from accounts.lockout import record_token_failure, token_locked_for
from accounts.models import AuditAction
from accounts.totp import has_second_factor
from api.models import ApiToken

SCHEME = "vms"
LAST_USED_EVERY = timedelta(minutes=1)  # a busy script does not write the row on every call


KEYWORDS = ("bearer", "token")  # Authorization: Bearer vms_… (or Token vms_…)


class TokenRefused(Exception):
    """The user may not hold a token now (the message says why)."""


class TokenDenied(Exception):
    """A request's token does not let it in (the message says why)."""


def bearer_token(authorization: str) -> str | None:
    """The token in an Authorization header's value, if it carries one."""
    keyword, _, token = authorization.strip().partition(" ")
    return token.strip() or None if keyword.lower() in KEYWORDS else None


def authenticate_token(token: str, address: str | None, request: HttpRequest | None = None) -> AbstractBaseUser:
    """The user a request's token stands for, wherever it is sent (API, download, sockets). A wrong
    token is counted against the address (on a counter of tokens only: failed passwords never lock
    a token out) and audited, so guessing tokens is locked out like guessing passwords."""
    if token_locked_for(address):
        raise TokenDenied("Too many failed attempts from this address; try again later.")
    user = token_user(token)
    if user is None:
        record_token_failure(address)
        audit(request, AuditAction.TOKEN_REFUSED, result="failed", address=address)
        raise TokenDenied("Invalid, expired or revoked token.")
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def may_hold_tokens(user: AbstractBaseUser) -> bool:
    """Administrators who must have a second factor may not get around it with a token."""
    return not (settings.REQUIRE_TOTP_FOR_ADMINS and is_admin(user) and not has_second_factor(user))


def api_token_issue(*, user: AbstractBaseUser, name: str, days: int | None) -> tuple[ApiToken, str]:
    """A new token for the user: the row, and the token text (shown once, never stored)."""
    if not may_hold_tokens(user):
        raise TokenRefused("Administrators need a second factor before they can make API tokens.")
    prefix = secrets.token_hex(4)
    while ApiToken.objects.filter(prefix=prefix).exists():
        prefix = secrets.token_hex(4)
    token = f"{SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    expires = timezone.now() + timedelta(days=days) if days else None
    row = ApiToken.objects.create(user=user, name=name, prefix=prefix, digest=_digest(token), expires_at=expires)
    return row, token


def tokens_revoke_all(*, request: HttpRequest | None, user: AbstractBaseUser, reason: str) -> int:
    """Revokes every token of the user (a password reset, "log out everywhere"), each audited."""
    rows = list(ApiToken.objects.filter(user=user))
    ApiToken.objects.filter(pk__in=[row.pk for row in rows]).delete()
    for row in rows:
        audit(request, AuditAction.TOKEN_REVOKED, target=f"{user.get_username()}: {row}", detail=reason)
    return len(rows)


def token_user(token: str) -> AbstractBaseUser | None:
    """The active user a token belongs to, or None for anything wrong with it."""
    scheme, _, rest = token.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != SCHEME or not prefix or not secret:
        return None
    row = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if row is None or not hmac.compare_digest(row.digest, _digest(token)) or row.expired:
        return None
    if not row.user.is_active or not may_hold_tokens(row.user):
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.user
