"""Users and grants: every change is audited and tells open sockets to re-read their scope."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest

from accounts.audit import audit
from accounts.models import AuditAction, Grant
from api.tokens import tokens_revoke_all
from domains.models import Domain
from events.publish import publish_host
from hosts.models import Host


class LastAdministrator(Exception):
    """The change would leave no active administrator, or take an administrator's own rights."""


def user_create(*, request: HttpRequest, username: str, password: str, administrator: bool) -> AbstractBaseUser:
    users = get_user_model()
    user = (users.objects.create_superuser if administrator else users.objects.create_user)(
        username=username, password=password)
    audit(request, AuditAction.USER_ADDED, target=username, detail="administrator" if administrator else "")
    return user


def user_update(*, request: HttpRequest, user: AbstractBaseUser, active: bool, administrator: bool) -> None:
    if user.pk == request.user.pk and (not active or not administrator):
        raise LastAdministrator("You cannot disable yourself or take your own administrator rights.")
    changes = []
    if user.is_active != active:
        changes.append("enabled" if active else "disabled")
    if user.is_superuser != administrator:
        changes.append("made administrator" if administrator else "no longer administrator")
    user.is_active, user.is_superuser, user.is_staff = active, administrator, administrator
    user.save(update_fields=["is_active", "is_superuser", "is_staff"])
    if changes:
        audit(request, AuditAction.USER_CHANGED, target=user.get_username(), detail=", ".join(changes))
        _rescope(Host.objects.values_list("pk", flat=True))


def user_set_password(*, request: HttpRequest | None, user: AbstractBaseUser, password: str,
                      reason: str = "password set by an administrator") -> None:
    """A new password: the user's sessions end and their API tokens are revoked."""
    user.set_password(password)
    user.save(update_fields=["password"])  # the user's other sessions end (Django's session hash)
    audit(request, AuditAction.USER_CHANGED, target=user.get_username(), detail=reason)
    tokens_revoke_all(request=request, user=user, reason=reason)


@transaction.atomic
def grant_set(*, request: HttpRequest, user: AbstractBaseUser, host: Host, domain: Domain | None,
              role: str) -> Grant:
    scope = {"host": None, "domain": domain} if domain is not None else {"host": host, "domain": None}
    grant, created = Grant.objects.update_or_create(user=user, **scope, defaults={"role": role})
    audit(request, AuditAction.GRANT_ADDED, target=f"{user.get_username()}: {role} on {domain or host}",
          detail="" if created else "role changed")
    transaction.on_commit(lambda: _rescope([host.pk]))
    return grant


def grant_remove(*, request: HttpRequest, grant: Grant) -> None:
    host_id = grant.host_id or grant.domain.host_id
    label = f"{grant.user.get_username()}: {grant.role} on {grant.host or grant.domain}"
    grant.delete()
    audit(request, AuditAction.GRANT_REMOVED, target=label)
    _rescope([host_id])


def _rescope(host_ids) -> None:
    for host_id in host_ids:
        publish_host(host_id=host_id)  # sockets re-read what their user may see
