"""Who may do what, in one place: pages, forms, live sockets and consoles all ask here.

Administrators (active superusers) may do everything. Everyone else may see and do only what a
grant gives: a grant on a host covers the host, its VMs, pools and networks; a grant on a VM
covers that VM and the volumes it owns. Viewers read; operators also run lifecycle actions,
consoles and VM changes. Changing hosts, pools, networks, users and grants is for administrators.

Volumes (the ownership model): a volume belongs to the VM it was made for (its record's owner
UUID) or to nobody. Attaching or inserting one into a VM: a host operator (or an administrator)
may use any volume of the VM's host; a VM's own operator only the volumes the VM owns or was
given. A volume another VM uses is refused for everyone unless an administrator marked it
shareable. Downloading: an operator of the host or of the owning VM, never a viewer; a
cloud-init seed (password hashes, keys) only an administrator. Giving a volume to a VM is a host
operator's; marking it shareable an administrator's. Deleting a VM with its volumes deletes only
those it owns that no other VM uses.
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.http import Http404

from accounts.models import Grant, Role
from backups.models import BackupJob, RestorePoint
from domains.models import Domain
from hosts.models import Host
from operations.models import Operation
from storage.models import StoragePool, Volume, VolumeGift, VolumeRecord

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


def visible_host_ids(user: AbstractBaseUser) -> set[int]:
    """The hosts whose pages the user may open: a page links a host's name only where this holds
    (a user granted one VM sees its host's name, and no link to a page that would answer 404)."""
    return set(hosts_for(user).values_list("pk", flat=True))


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
    if isinstance(obj, Volume):
        return _may_volume(user, need, obj)
    if isinstance(obj, BackupJob):  # a job reaches one host's VMs: its viewers see it, its operators manage it
        return hosts_for(user, need).filter(pk=obj.host_id).exists()
    host_id = getattr(obj, "host_id", None)  # pools, networks, interfaces, filters: their host's grant;
    return need == VIEW and host_id is not None and hosts_for(user, VIEW).filter(pk=host_id).exists()  # changes: admins


def may_rewire_nics(user: AbstractBaseUser | None, domain: Domain) -> bool:
    """May the user choose which network a VM's NIC is on, its MAC or its network filter, or add a
    NIC (which picks a network)? Networks, MACs (unique per host) and filters are the host's, so this
    is a host operator's right (or an administrator's); a grant on the VM alone allows a NIC's link
    state and model, and removing a NIC (which reaches nothing new)."""
    return user is not None and user.is_authenticated and may(user, OPERATE, domain.host)


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


# ---------------------------------------------------------------------------------------------
# Volumes


def volume_record(volume: Volume) -> VolumeRecord | None:
    if volume.record_id:
        return volume.record
    return VolumeRecord.objects.filter(host_id=volume.host_id, key=volume.key).first()


def _may_volume(user: AbstractBaseUser, need: str, volume: Volume) -> bool:
    """VIEW or OPERATE: through the volume's host, or through the VM that owns it."""
    if need not in (VIEW, OPERATE):
        return False
    if hosts_for(user, need).filter(pk=volume.host_id).exists():
        return True
    record = volume_record(volume)
    return bool(record and record.owner_uuid
                and domains_for(user, need).filter(host_id=volume.host_id, uuid=record.owner_uuid).exists())


def download_refusal(user: AbstractBaseUser, volume: Volume) -> str | None:
    """Why the user may not download the volume (None: they may). Call only for a volume they may see."""
    if is_admin(user):
        return None
    if volume.is_cloud_init_seed:
        return "A cloud-init seed holds password hashes and keys: only administrators may download it."
    if not _may_volume(user, OPERATE, volume):
        return ("Downloading a volume needs an operator's right on its host or on the VM that owns it; "
                "viewers may not.")
    return None


def volume_uses_for(domain: Domain, volume: Volume | None) -> str:
    """How the VM may use the volume: 'own' (made for it), 'given', or '' (neither)."""
    record = volume_record(volume) if volume is not None else None
    if record is None:
        return ""
    if record.owner_uuid == domain.uuid:
        return "own"
    return "given" if VolumeGift.objects.filter(record=record, domain_uuid=domain.uuid).exists() else ""


def volume_use_refusal(user: AbstractBaseUser, domain: Domain, volume: Volume | None, *, label: str,
                       used_by: list[Domain]) -> str | None:
    """Why the user may not attach (or insert) this volume into this VM; None: they may. `volume` is
    the cached row named `label` on the VM's host (None when there is none); `used_by`: the VMs whose
    disks name it. A user never learns more of a volume than their rights show them."""
    if not may(user, OPERATE, domain):
        return "Your role does not allow changes to this VM."
    host_wide = may(user, OPERATE, domain.host)
    if not host_wide and not volume_uses_for(domain, volume):
        return (f"{label} is not a volume of this VM: its users may attach only the volumes made for it "
                "or given to it by a host operator.")
    if volume is None:
        return None  # a host operator's: the worker finds it on the host, or says it is not there
    return volume_in_use_refusal(user, volume, label=label, used_by=[other for other in used_by
                                                                     if other.uuid != domain.uuid])


def volume_in_use_refusal(user: AbstractBaseUser, volume: Volume, *, label: str, used_by: list[Domain]) -> str | None:
    """A volume other VMs use (used_by) is refused for everyone, unless an administrator marked it shareable."""
    record = volume_record(volume)
    if not used_by or (record and record.shareable):
        return None
    seen = [other.name for other in used_by if may(user, VIEW, other)]
    who = ", ".join(seen) if len(seen) == len(used_by) else "another VM"
    return f"{label} is in use by {who}: a volume is on one VM at a time unless an administrator marks it shareable."


def may_give_volume(user: AbstractBaseUser, volume: Volume) -> bool:
    """Giving a volume to a VM of its host (so that the VM's own users may attach it)."""
    return is_admin(user) or hosts_for(user, OPERATE).filter(pk=volume.host_id).exists()


def may_mark_shareable(user: AbstractBaseUser) -> bool:
    return is_admin(user)


def volume_keys_deletable_with(domain: Domain, *, used_elsewhere: set[str]) -> set[str]:
    """The keys of the volumes "delete with its volumes" may delete: those the VM owns, minus those
    another VM uses (used_elsewhere, as the worker found them on the host)."""
    owned = set(VolumeRecord.objects.filter(host_id=domain.host_id, owner_uuid=domain.uuid)
                .values_list("key", flat=True))
    return owned - used_elsewhere


def may_define_pools_and_networks(user: AbstractBaseUser, host: Host) -> bool:
    """Defining, building and starting a host's storage pools and virtual networks (the pages, the
    API and the new-VM wizard's offer of the host's defaults): administrators only, as every change
    to pools and networks; a host operator is told whom to ask."""
    return may(user, ADMIN, host)


def may_see_tombstone(user: AbstractBaseUser, tombstone) -> bool:
    """What is left of a deleted or moved VM or network (tombstones.models.Tombstone): for those who
    could see the object, that is its host's users and the users of the object's own grants."""
    if is_admin(user):
        return True
    if not user.is_authenticated or not user.is_active:
        return False
    if user.pk in tombstone.viewer_ids:
        return True
    return tombstone.host_id is not None and hosts_for(user, VIEW).filter(pk=tombstone.host_id).exists()


def pools_for_new_volume(user: AbstractBaseUser, domain: Domain) -> QuerySet[StoragePool]:
    """The active pools of the VM's host the user may make a new disk for this VM in: all of them for a
    host operator (or an administrator); for the VM's own operators only the pools that already hold a
    volume made for it (its disks stay where the host's operators put them); none for a viewer. The
    forms offer only these, so a VM's user never sees the names of the host's other pools."""
    pools = StoragePool.objects.filter(host_id=domain.host_id, active=True)
    if not may(user, OPERATE, domain):
        return pools.none()
    if may(user, OPERATE, domain.host):
        return pools
    own_keys = VolumeRecord.objects.filter(host_id=domain.host_id, owner_uuid=domain.uuid).values("key")
    return pools.filter(volumes__key__in=own_keys).distinct()


def new_volume_refusal(user: AbstractBaseUser, domain: Domain, pool: Model) -> str | None:
    """Why the user may not make a new volume for this VM in this pool (None: they may; the rule is
    pools_for_new_volume's). The new volume is the VM's own."""
    if not may(user, OPERATE, domain):
        return "Your role does not allow changes to this VM."
    if pool.host_id != domain.host_id:
        return "A new disk is made in a pool of the VM's own host."
    if pools_for_new_volume(user, domain).filter(pk=pool.pk).exists():
        return None
    return (f"Your grant is on this VM only: it may make new disks only in a pool that holds one of its own "
            f"volumes, and {pool.name} holds none. Ask a host operator.")


# ---------------------------------------------------------------------------------------------
# Backups (issue 18): a VM's viewers see its restore points; its operators back it up now, into a
# file pool they may make its volumes in; restoring makes a new VM, so it needs an operator's right
# on the host it is made on (any host they operate); in place (the VM shut off) and one disk attached
# read-only are the VM's operators'. A job's second copy goes to another host its manager operates.

BACKUP_POOL_TYPES = ("dir", "fs", "netfs")  # a backup is a file (and a chain of qcow2 overlays)


def restore_points_for(user: AbstractBaseUser, domain: Domain) -> QuerySet[RestorePoint]:
    """The VM's restore points, for whoever may see the VM."""
    if not may(user, VIEW, domain):
        return RestorePoint.objects.none()
    return RestorePoint.objects.filter(domain_uuid=domain.uuid)


def backup_pools_for(user: AbstractBaseUser, domain: Domain) -> QuerySet[StoragePool]:
    """The pools a backup of the VM may be written to: the file pools among those the user may make
    the VM's new volumes in (pools_for_new_volume: all of the host's for a host operator)."""
    return pools_for_new_volume(user, domain).filter(pool_type__in=BACKUP_POOL_TYPES)


def restore_refusal(user: AbstractBaseUser, domain: Domain, point: RestorePoint,
                    host: Host | None = None) -> str | None:
    """Why the user may not restore this restore point of the VM as a new VM on `host` (default: the
    host that holds the point's files) (None: they may). The files may be read on any host: the VM's
    operator restores its backups, and the new VM is on a host they operate."""
    host = host or point.host
    if not may(user, OPERATE, domain):
        return "Your role does not allow changes to this VM."
    if not may(user, OPERATE, host):
        return (f"Restoring makes a new VM on {host}: that needs an operator's right on the host, not only on "
                f"{domain.name}. Choose a host you operate, or ask a host operator.")
    return None


def restore_hosts_for(user: AbstractBaseUser) -> QuerySet[Host]:
    """The hosts a restored VM may be made on: those the user operates."""
    return hosts_for(user, OPERATE)


def restore_target_pools_for(user: AbstractBaseUser) -> QuerySet[StoragePool]:
    """The active file pools, on any host the user operates, a restored VM's disks may go in."""
    return StoragePool.objects.filter(host__in=restore_hosts_for(user), active=True, pool_type__in=BACKUP_POOL_TYPES)


def restore_in_place_refusal(user: AbstractBaseUser, domain: Domain) -> str | None:
    """Why the user may not overwrite the VM's disks from one of its backups, or attach a backup's disk
    to it and detach it (None: they may): the VM's operators may."""
    if not may(user, OPERATE, domain):
        return "Your role does not allow changes to this VM."
    return None
def health_check_refusal(user: AbstractBaseUser, domain: Domain, point: RestorePoint) -> str | None:
    """Why the user may not health-check this restore point of the VM (None: they may). The check
    boots a temporary copy of the VM, with no network, on the host that holds the point's files and
    removes it: the VM's operators may, as they may back it up, while the point is on the VM's
    host; a point on another host needs an operator's right there (as a restore does)."""
    if not may(user, OPERATE, domain):
        return "Your role does not allow changes to this VM."
    if point.host_id != domain.host_id and not may(user, OPERATE, point.host):
        return (f"The health check boots a temporary VM on {point.host}, where this backup's files are: that needs "
                f"an operator's right on that host. Ask a host operator.")
    return None


def restore_pools_for(user: AbstractBaseUser, point: RestorePoint) -> QuerySet[StoragePool]:
    """The active file pools of the restore point's host a restored VM's disks may go in: a host operator's."""
    pools = StoragePool.objects.filter(host_id=point.host_id, active=True, pool_type__in=BACKUP_POOL_TYPES)
    return pools if may(user, OPERATE, point.host) else pools.none()


# Backup jobs (issue 18): a job backs up VMs of one host into a pool of that host, so managing it
# (make, change, delete, run now) is that host's operators' (and administrators'); the host's
# viewers see it. may() answers for one job.


def backup_jobs_for(user: AbstractBaseUser) -> QuerySet[BackupJob]:
    """The jobs the user may see: those on hosts they may see."""
    return BackupJob.objects.filter(host__in=hosts_for(user, VIEW))


def backup_job_hosts_for(user: AbstractBaseUser) -> QuerySet[Host]:
    """The hosts the user may make or move a backup job to."""
    return hosts_for(user, OPERATE)
