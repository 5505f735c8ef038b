"""Who may do what, in one place: pages, forms, live sockets and consoles all ask here.

Administrators (active superusers) may do everything. Everyone else may see and do only what a
grant gives: a grant on a host covers the host, its VMs, pools and networks; a grant on a VM
covers that VM. Viewers read; operators also run lifecycle actions, consoles and VM changes.
Changing hosts, pools, networks, users and grants is for administrators.
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.http import Http404

from accounts.models import Grant, Role
from domains.models import Domain
from hosts.models import Host
from operations.models import Operation

VIEW = "view"
OPERATE = "operate"
ADMIN = "admin"
_ROLES = {VIEW: [Role.VIEWER, Role.OPERATOR], OPERATE: [Role.OPERATOR]}


def is_admin(user: AbstractBaseUser) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def hosts_for(user: AbstractBaseUser, need: str = VIEW) -> QuerySet[Host]:
    """Hosts the user may see (VIEW) or act on (OPERATE) as a whole."""
    if is_admin(user):
        return Host.objects.all()
    if not user.is_authenticated or not user.is_active or need == ADMIN:
        return Host.objects.none()
    return Host.objects.filter(pk__in=Grant.objects.filter(user=user, host__isnull=False, role__in=_ROLES[need])
                               .values("host_id"))


def domains_for(user: AbstractBaseUser, need: str = VIEW) -> QuerySet[Domain]:
    if is_admin(user):
        return Domain.objects.all()
    if not user.is_authenticated or not user.is_active or need == ADMIN:
        return Domain.objects.none()
    grants = Grant.objects.filter(user=user, role__in=_ROLES[need])
    return Domain.objects.filter(Q(host_id__in=grants.filter(host__isnull=False).values("host_id"))
                                 | Q(pk__in=grants.filter(domain__isnull=False).values("domain_id")))


def operations_for(user: AbstractBaseUser) -> QuerySet[Operation]:
    """Operations the user may see: their own, and those on what they may see."""
    if is_admin(user):
        return Operation.objects.all()
    if not user.is_authenticated or not user.is_active:
        return Operation.objects.none()
    domain_ids = domains_for(user).values("pk")
    return Operation.objects.filter(Q(user=user) | Q(host_id__in=hosts_for(user).values("pk"))
                                    | Q(target_type="domain", target_id__in=domain_ids))


def operates_anything(user: AbstractBaseUser) -> bool:
    """Whether any operator right is the user's (a page that acts on what it lists needs one)."""
    return is_admin(user) or (user.is_authenticated and user.is_active
                               and Grant.objects.filter(user=user, role=Role.OPERATOR).exists())


def operable_ids(user: AbstractBaseUser, domains) -> set[int]:
    """Which of these VMs (a page of a list) the user may operate: one query for the page."""
    ids = [domain.pk for domain in domains]
    return set(domains_for(user, OPERATE).filter(pk__in=ids).values_list("pk", flat=True))


def may(user: AbstractBaseUser, need: str, obj: Model) -> bool:
    """May the user see (VIEW), act on (OPERATE) or administer (ADMIN) this object?"""
    if is_admin(user):
        return True
    if need == ADMIN or not user.is_authenticated or not user.is_active:
        return False
    if isinstance(obj, Operation):  # seeing it: as listed; stopping it: a right to act on its VM
        if need == VIEW:
            return operations_for(user).filter(pk=obj.pk).exists()
        return obj.target_type == "domain" and domains_for(user, need).filter(pk=obj.target_id).exists()
    if isinstance(obj, Domain):
        return domains_for(user, need).filter(pk=obj.pk).exists()
    if isinstance(obj, Host):
        return hosts_for(user, need).filter(pk=obj.pk).exists()
    host_id = getattr(obj, "host_id", None)  # pools, networks, interfaces, filters: their host's grant;
    return need == VIEW and host_id is not None and hosts_for(user, VIEW).filter(pk=host_id).exists()  # changes: admins


def may_rewire_nics(user: AbstractBaseUser | None, domain: Domain) -> bool:
    """May the user choose which network a VM's NIC is on, its MAC or its network filter, or add a
    NIC (which picks a network)? Networks, MACs (unique per host) and filters are the host's, so this
    is a host operator's right (or an administrator's); a grant on the VM alone allows a NIC's link
    state and model, and removing a NIC (which reaches nothing new)."""
    return user is not None and may(user, OPERATE, domain.host)


def authorise(user: AbstractBaseUser, need: str, objects: QuerySet | None = None, pk=None,
              host_need: str | None = None) -> Model | None:
    """What every view (page or API) declares, checked: `need` on the object `pk` of `objects`, or on
    nothing in particular when `objects` is None. Returns the object. Raises Http404 for an object
    the user may not see, PermissionDenied for one they may see but not change (both pages and the
    API answer these as 404 and 403)."""
    if objects is None:
        if need == ADMIN and not is_admin(user):
            raise PermissionDenied("Administrators only.")
        if need == OPERATE and not operates_anything(user):
            raise PermissionDenied("Your role does not allow changes.")
        return None
    obj = objects.filter(pk=pk).first()
    if obj is None or not may(user, VIEW, obj):
        raise Http404(f"No such {objects.model._meta.verbose_name}.")
    if need != VIEW and not may(user, need, obj):
        raise PermissionDenied(f"Your role does not allow this on {obj}.")
    if host_need and not may(user, host_need, obj.host):
        raise PermissionDenied(f"This needs an operator's right on the host {obj.host}, not only on {obj}.")
    return obj


def live_scope(user: AbstractBaseUser) -> dict[int, set[int] | None]:
    """For the live socket: host id -> None (everything on it) or the VM ids granted on it."""
    if is_admin(user):
        return {pk: None for pk in Host.objects.values_list("pk", flat=True)}
    scope: dict[int, set[int] | None] = {pk: None for pk in hosts_for(user).values_list("pk", flat=True)}
    for domain_id, host_id in (Domain.objects.filter(grants__user=user, grants__role__in=_ROLES[VIEW])
                               .values_list("pk", "host_id")):
        if scope.get(host_id, set()) is not None:
            scope.setdefault(host_id, set()).add(domain_id)
    return scope
