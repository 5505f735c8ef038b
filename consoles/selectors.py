"""Reads for consoles: who may open a VM's console, and whether an open console may stay open."""
from __future__ import annotations

from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.backends.base import SessionBase
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string
from django.conf import settings

from accounts.access import OPERATE, may
from consoles.tokens import ConsoleGrant
from domains.models import Domain

def console_allowed(user: AbstractBaseUser, domain: Domain) -> bool:
    """Consoles are for whoever may operate the VM (accounts.access)."""
    return may(user, OPERATE, domain)


def domain_graphics_types(domain: Domain) -> set[str]:
    """The display types the VM's cached XML summary names (empty when not read yet)."""
    return {graphics.get("type") for graphics in (domain.details or {}).get("graphics", [])}


def domain_graphics(domain: Domain, graphics_type: str) -> dict | None:
    for graphics in (domain.details or {}).get("graphics", []):
        if graphics.get("type") == graphics_type:
            return graphics
    return None


def grant_revoked_reason(grant: ConsoleGrant, session_key: str) -> str | None:
    """Why a console opened with this grant must close now, or None while it may stay open.

    Read fresh from the database each time (no cached user or permissions): cheap enough to run
    every couple of seconds per open console.
    """
    user = get_user_model().objects.filter(pk=grant.user_id).first()
    if user is None or not user.is_active:
        return "your account is disabled"
    if not _session_belongs_to(session_key, user):
        return "you are logged out"
    domain = Domain.objects.filter(pk=grant.domain_id).first()
    if domain is None:
        return "the VM was deleted"
    if str(domain.uuid) != grant.domain_uuid or domain.host_id != grant.host_id:
        return "the VM moved to another host"
    if not console_allowed(user, domain):
        return "you no longer have the right to open this console"
    return None


def _session_belongs_to(session_key: str, user: AbstractBaseUser) -> bool:
    store: SessionBase = import_string(f"{settings.SESSION_ENGINE}.SessionStore")(session_key)
    data = store.load()  # {} when the session is gone or expired
    if str(data.get(SESSION_KEY)) != str(user.pk):
        return False
    return constant_time_compare(data.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash())
