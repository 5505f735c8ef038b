"""A VM keeps one identity across hosts (its UUID): one row, so one page, one operations history,
one graph series and one set of grants, wherever it runs.

When a VM's row finds its VM gone from its host, it is either on its way (a migration is running:
the row waits for the migration handler to move it), already on another host (a row made there by
the listener or a reconcile is folded into this one, which moves), or really gone (a tombstone
keeps the answer for its old page)."""
from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import F

from accounts.models import Grant
from domains.models import Domain
from events.publish import publish_domain, publish_host, publish_inventory
from metrics.models import Sample
from operations.choices import OperationState
from operations.models import Operation
from tombstones.services import tombstone_record

KEPT, MOVED, DELETED = "kept", "moved", "deleted"
# The columns a row takes from the one it absorbs: all that its new host says of the VM now, which
# is every column but the row's identity (its id, host and UUID) and its sequence number.
_CACHED = tuple(field.name for field in Domain._meta.concrete_fields if field.name not in ("id", "host", "uuid", "seq"))


def domains_gone(pks: Iterable[int]) -> dict[int, str]:
    """The VMs of these rows are no longer on the rows' hosts: what became of each row."""
    return {pk: domain_gone(pk) for pk in pks}


@transaction.atomic
def domain_gone(domain_id: int) -> str:
    uuid = Domain.objects.filter(pk=domain_id).values_list("uuid", flat=True).first()
    if uuid is None:
        return DELETED
    _lock_rows_of(uuid)
    row = Domain.objects.select_related("host").filter(pk=domain_id).first()
    if row is None:  # deleted or folded by whoever held the lock before us
        return DELETED
    if _migrating(row):
        return KEPT
    elsewhere = (Domain.objects.filter(uuid=row.uuid).exclude(pk=row.pk).exclude(host_id=row.host_id)
                 .order_by("pk").first())
    if elsewhere is not None:
        domain_absorb(keep=row, other=elsewhere)
        return MOVED
    viewers = list(Grant.objects.filter(domain=row).values_list("user_id", flat=True))
    tombstone_record(obj=row, viewer_ids=viewers)
    row.delete()
    transaction.on_commit(lambda: publish_domain(domain_id=domain_id, host_id=row.host_id, seq=row.seq + 1,
                                                 state=None, change="deleted"))
    return DELETED


def _lock_rows_of(uuid) -> None:
    """Lock every row of this VM, in id order, until the transaction ends (PostgreSQL; SQLite has one
    writer at a time anyway). A graph sample or grant filed under one of them meanwhile waits, then
    finds the row gone, instead of landing between the deletion of the row's samples and of the row,
    which the foreign key refuses."""
    list(Domain.objects.select_for_update(of=("self",)).filter(uuid=uuid).order_by("pk").values_list("pk", flat=True))


def domain_absorb(*, keep: Domain, other: Domain) -> None:
    """`keep` moves to `other`'s host and takes what `other` says of the VM; whatever was filed
    under `other` (operations, graph samples, grants) is filed under `keep`, and `other`'s id
    forwards to it."""
    source_host_id = keep.host_id
    with transaction.atomic():
        _lock_rows_of(keep.uuid)
        Operation.objects.filter(target_type="domain", target_id=other.pk).update(target_id=keep.pk)
        Sample.objects.filter(domain_id=other.pk).update(domain_id=keep.pk)
        for user_id, role in Grant.objects.filter(domain=other).values_list("user_id", "role"):
            Grant.objects.get_or_create(user_id=user_id, domain=keep, defaults={"role": role})
        values = {name: getattr(other, name) for name in _CACHED}
        tombstone_record(obj=other, viewer_ids=[], how="its row was folded into the VM's older one")  # forwards
        other.delete()
        Domain.objects.filter(pk=keep.pk).update(host_id=other.host_id, seq=F("seq") + other.seq + 1, **values)
    keep.refresh_from_db()
    for host_id in {source_host_id, keep.host_id}:
        transaction.on_commit(lambda host_id=host_id: publish_host(host_id=host_id))  # sockets re-read scopes
        transaction.on_commit(lambda host_id=host_id: publish_inventory(host_id=host_id))
    transaction.on_commit(lambda: publish_domain(domain_id=keep.pk, host_id=keep.host_id, seq=keep.seq,
                                                 state=keep.state, change="changed"))


def domain_move(*, domain: Domain, destination_id: int) -> None:
    """After a migration that left the source: the VM's row goes with it (see the module's doc)."""
    other = Domain.objects.filter(host_id=destination_id, uuid=domain.uuid).exclude(pk=domain.pk).first()
    if other is not None:
        domain_absorb(keep=domain, other=other)
        return
    Domain.objects.filter(pk=domain.pk).update(host_id=destination_id, seq=F("seq") + 1)
    moved = Domain.objects.get(pk=domain.pk)
    for host_id in {domain.host_id, destination_id}:
        transaction.on_commit(lambda host_id=host_id: publish_host(host_id=host_id))  # sockets re-read scopes
    # Open pages of the VM refetch it: the same id, now on its new host.
    transaction.on_commit(lambda: publish_domain(domain_id=moved.pk, host_id=destination_id, seq=moved.seq,
                                                 state=moved.state, change="changed"))


def _migrating(row: Domain) -> bool:
    return Operation.objects.filter(kind="domain.migrate", target_type="domain", target_id=row.pk,
                                    state=OperationState.RUNNING).exists()
