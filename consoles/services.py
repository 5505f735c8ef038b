"""Console tokens: issued to a user who may open this VM's console, for one connection soon."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from consoles.selectors import console_allowed, domain_graphics_types
from consoles.tokens import ConsoleGrant, hash_secret, token_store
from domains.models import Domain
from hosts.choices import Transport


class ConsoleUnavailable(Exception):
    """The console cannot be opened now, in words for the user (the VM is off, has no display...)."""


class ConsoleForbidden(Exception):
    pass


def console_token_issue(*, user: AbstractBaseUser, domain: Domain, session_key: str | None,
                        graphics: str = "vnc") -> str:
    """A one-use token for the VM's display, bound to this user, login session, VM and host."""
    if not console_allowed(user, domain):
        raise ConsoleForbidden("You do not have the right to open consoles.")
    if not session_key:
        raise ConsoleForbidden("Log in to open a console.")
    console_check_available(domain=domain, graphics=graphics)
    grant = ConsoleGrant(user_id=user.pk, session_hash=hash_secret(session_key), domain_id=domain.pk,
                         domain_uuid=str(domain.uuid), host_id=domain.host_id, graphics=graphics)
    return token_store(grant)


def console_check_available(*, domain: Domain, graphics: str) -> None:
    if domain.host.transport == Transport.TEST:
        raise ConsoleUnavailable("VMs of libvirt's test driver have no consoles.")
    if not domain.is_active:
        state = domain.get_state_display().lower()
        raise ConsoleUnavailable(f"{domain.name} is {state}: start it to open its console.")
    if graphics == "serial":
        return  # every guest may have one; libvirt says so when it opens
    types = domain_graphics_types(domain)
    if types and graphics not in types:
        raise ConsoleUnavailable(f"{domain.name} has no {graphics.upper()} display.")
