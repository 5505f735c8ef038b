"""Pages for restoring a VM in place from one of its backups (the VM shut off) and for attaching one
disk of a backup to the running VM read-only, and detaching it. Each validates with its form, queues
one operation and goes back to the VM's page; refusals show there as messages."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.views import View

from accounts.access import OPERATE, restore_in_place_refusal
from accounts.mixins import Access
from backups.forms_restores import AttachDiskForm, RestoreInPlaceForm
from backups.models import AttachedBackupDisk
from backups.restores import RestoreRefused, attach_enqueue, detach_enqueue, restore_in_place_enqueue
from backups.views import queue_from_form, queue_on_vm_page, restore_point_of
from domains.models import Domain
from operations.services import OperationBusy


class _VMBackupAction(Access, View):
    need, kind = OPERATE, Domain
    http_method_names = ["post"]

    def refuse_unless_allowed(self, request) -> None:
        refusal = restore_in_place_refusal(request.user, self.object)
        if refusal:
            raise PermissionDenied(refusal)

    def done(self, request, form, queue) -> object:
        return queue_from_form(request, self.object, form, queue, refused=(OperationBusy, RestoreRefused))


class RestoreInPlaceView(_VMBackupAction):
    def post(self, request, pk: int, point_id: int):
        self.refuse_unless_allowed(request)
        point = restore_point_of(request.user, self.object, point_id)
        form = RestoreInPlaceForm(request.POST, point=point, domain=self.object)
        return self.done(request, form, lambda data: restore_in_place_enqueue(
            domain=self.object, point=point, user=request.user, copy=data.get("source")))


class AttachDiskView(_VMBackupAction):
    def post(self, request, pk: int, point_id: int):
        self.refuse_unless_allowed(request)
        point = restore_point_of(request.user, self.object, point_id)
        form = AttachDiskForm(request.POST, point=point, domain=self.object, user=request.user)
        return self.done(request, form, lambda data: attach_enqueue(
            domain=self.object, point=point, disk=data["disk"], pool=data["pool"], user=request.user))


class DetachDiskView(_VMBackupAction):
    def post(self, request, pk: int, attached_id: int):
        self.refuse_unless_allowed(request)
        attached = get_object_or_404(AttachedBackupDisk, pk=attached_id, domain=self.object)
        return queue_on_vm_page(request, self.object, lambda: detach_enqueue(attached=attached, user=request.user),
                                refused=(OperationBusy,))
