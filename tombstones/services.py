"""Writing tombstones: a VM or network row is about to go, so its old page keeps an answer."""
from __future__ import annotations

from django.db.models import Model

from operations.choices import OperationState
from operations.models import Operation
from tombstones.models import Tombstone


def tombstone_record(*, obj: Model, viewer_ids: list[int] | None = None, how: str = "") -> Tombstone:
    """Record that `obj` (a Domain or VirtualNetwork row) is gone. Who did it is the user of the
    operation running on it at that moment; none running means it went outside vmsite. `how`, in
    words, unless the operation says it."""
    kind = obj._meta.model_name
    operation = (Operation.objects.filter(target_type=kind, target_id=obj.pk, state=OperationState.RUNNING)
                 .select_related("user").order_by("-pk").first())
    if not how:  # a caller may know better (a row folded into its VM's older row)
        how = (f"{operation.kind.split('.')[-1].replace('_', ' ')}, operation #{operation.pk}" if operation
               else "removed outside vmsite (found gone on its host)")
    return Tombstone.objects.create(
        kind=kind, object_id=obj.pk, uuid=obj.uuid, name=obj.name, host_id=obj.host_id,
        host_name=obj.host.name if obj.host_id else "", by=operation.user if operation else None, how=how,
        viewer_ids=sorted(set(viewer_ids or [])))


def tombstone_of(*, kind: str, object_id: int) -> Tombstone | None:
    return Tombstone.objects.filter(kind=kind, object_id=object_id).select_related("host", "by").first()
