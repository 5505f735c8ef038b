"""Backups through the API: a VM's restore points (with their copies), "back up now", "health check", "restore as a
new VM" (on any host the user operates, from a copy too), restore in place, attach and detach a backup disk, with the
pages' forms (what is accepted) and services (what is queued), and the same rights."""
from __future__ import annotations

from collections.abc import Callable

from django.urls import path
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied

from accounts.access import (OPERATE, VIEW, health_check_refusal, restore_hosts_for, restore_in_place_refusal,
                             restore_refusal)
from api import forms as api_forms
from api.base import ApiListView, ApiView, enqueue
from api.serializers import QueuedSerializer, queues
from backups.forms import BackupNowForm, RestoreForm
from backups.forms_restores import AttachDiskForm, RestoreInPlaceForm
from backups.models import AttachedBackupDisk, RestorePoint, RestorePointCopy, RestorePointDisk
from backups.restores import RestoreRefused, attach_enqueue, detach_enqueue, restore_in_place_enqueue
from backups.selectors import restore_points_list
from backups.services import BackupRefused, backup_enqueue, health_check_enqueue
from backups.views import restore_point_of, restore_queue
from domains.models import Domain
from operations.models import Operation
from operations.services import OperationBusy


class RestorePointDiskSerializer(serializers.ModelSerializer):
    class Meta:
        model = RestorePointDisk
        fields = ["target", "source", "volume", "format", "capacity", "size", "checksum"]


class RestorePointCopySerializer(serializers.ModelSerializer):
    class Meta:
        model = RestorePointCopy
        fields = ["id", "host", "pool_name", "checksums", "created_at"]


class RestorePointSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="name", read_only=True)
    disks = RestorePointDiskSerializer(many=True, read_only=True)
    copies = RestorePointCopySerializer(many=True, read_only=True)

    class Meta:
        model = RestorePoint
        fields = ["id", "name", "kind", "parent", "chain", "state", "host", "pool_name", "domain_uuid", "domain_name",
                  "consistency", "note", "seconds", "created_at", "disks", "copies", "health", "health_checked_at",
                  "health_seconds", "health_note"]


BackupBody = api_forms.schema_for(BackupNowForm, "BackupNow")
RestoreBody = api_forms.schema_for(RestoreForm, "Restore")
InPlaceBody = api_forms.schema_for(RestoreInPlaceForm, "RestoreInPlace")
AttachBody = api_forms.schema_for(AttachDiskForm, "AttachBackupDisk")


class VMBackups(ApiListView):
    """GET: the VM's restore points, newest first. POST: back the VM up now (incremental when its
    chain can go on in that pool, else full)."""

    need, kind = {"GET": VIEW, "POST": OPERATE}, Domain
    queryset = Domain.objects.select_related("host")
    serializer_class = RestorePointSerializer

    def get_queryset(self):
        return restore_points_list(user=self.request.user, domain=self.object)

    @queues(BackupBody)
    def post(self, request, pk: int):
        domain = self.object
        form = BackupNowForm(api_forms.body(request), domain=domain, user=request.user)
        pool = api_forms.valid(form)["pool"]
        return enqueue(lambda: backup_enqueue(domain=domain, user=request.user, pool=pool), OperationBusy,
                       BackupRefused)


class VMBackupRestore(ApiView):
    """Restore one of the VM's restore points as a new VM: on the host that holds its files (the
    default), or on another host the user operates (`host`), read from where it was taken or from a
    copy (`source`: a copy's id), with `network` for every NIC when the VM's networks are not there."""

    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")
    serializer_class = RestoreBody
    needs_an_operated_host = True  # the new VM is made on a host the user operates (restore_refusal)

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if not restore_hosts_for(request.user).exists():  # no host at all to make the new VM on
            point = restore_point_of(request.user, self.object, kwargs["point_id"])
            raise PermissionDenied(restore_refusal(request.user, self.object, point))

    @queues(RestoreBody)
    def post(self, request, pk: int, point_id: int):
        domain = self.object
        point = restore_point_of(request.user, domain, point_id)
        form = RestoreForm(api_forms.body(request), point=point, user=request.user)
        cleaned = api_forms.valid(form)
        refusal = restore_refusal(request.user, domain, point, cleaned["host"])
        if refusal:
            raise PermissionDenied(refusal)
        return enqueue(lambda: restore_queue(form, user=request.user), OperationBusy)


class VMBackupRestoreInPlace(ApiView):
    """Overwrite the VM's disks (it must be shut off) from one of its restore points (`confirm`: true);
    its backup chain restarts, so its next backup is full."""

    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")
    serializer_class = InPlaceBody

    @queues(InPlaceBody)
    def post(self, request, pk: int, point_id: int):
        domain = self.object
        return _queue_from_point(
            request, domain, point_id, lambda data, point: RestoreInPlaceForm(data, point=point, domain=domain),
            lambda point, cleaned: restore_in_place_enqueue(domain=domain, point=point, user=request.user,
                                                            copy=cleaned.get("source")))


class VMBackupAttach(ApiView):
    """Attach one disk of a restore point to the running VM, read-only (a copy in a pool of its host)."""

    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")
    serializer_class = AttachBody

    @queues(AttachBody)
    def post(self, request, pk: int, point_id: int):
        domain = self.object
        return _queue_from_point(
            request, domain, point_id,
            lambda data, point: AttachDiskForm(data, point=point, domain=domain, user=request.user),
            lambda point, cleaned: attach_enqueue(domain=domain, point=point, disk=cleaned["disk"],
                                                  pool=cleaned["pool"], user=request.user))


class VMBackupDetach(ApiView):
    """Detach a backup disk attached to the VM and delete its copy."""

    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")
    serializer_class = None

    @queues()
    def post(self, request, pk: int, attached_id: int):
        domain = self.object
        _refuse_unless_allowed(request.user, domain)
        attached = AttachedBackupDisk.objects.filter(pk=attached_id, domain=domain).first()
        if attached is None:
            raise NotFound("No such attached backup disk.")
        return enqueue(lambda: detach_enqueue(attached=attached, user=request.user), OperationBusy)


def _queue_from_point(request, domain: Domain, point_id: int, make_form: Callable[[dict, RestorePoint], object],
                      queue: Callable[[RestorePoint, dict], Operation]):
    """In place and attach: the VM's restore rights, then one of its points, the request body through
    make_form(body, point), and queue(point, cleaned data) (409 when busy or refused)."""
    _refuse_unless_allowed(request.user, domain)
    point = restore_point_of(request.user, domain, point_id)
    cleaned = api_forms.valid(make_form(api_forms.body(request), point))
    return enqueue(lambda: queue(point, cleaned), OperationBusy, RestoreRefused)


def _refuse_unless_allowed(user, domain: Domain) -> None:
    refusal = restore_in_place_refusal(user, domain)
    if refusal:
        raise PermissionDenied(refusal)


class VMBackupHealthCheck(ApiView):
    """Health-check one of the VM's restore points: boot it in a temporary VM with no network until its
    guest agent answers, then remove that VM; the result is recorded on the point (GET vms/<id>/backups/)."""

    need, kind = OPERATE, Domain  # a point on another host needs its operators too: health_check_refusal
    queryset = Domain.objects.select_related("host")
    serializer_class = QueuedSerializer

    @queues(None)
    def post(self, request, pk: int, point_id: int):
        domain = self.object
        point = restore_point_of(request.user, domain, point_id)
        refusal = health_check_refusal(request.user, domain, point)
        if refusal:
            raise PermissionDenied(refusal)
        return enqueue(lambda: health_check_enqueue(point=point, user=request.user), OperationBusy)


def urlpatterns() -> list:
    return [
        path("vms/<int:pk>/backups/", VMBackups.as_view(), name="vm_backups"),
        path("vms/<int:pk>/backups/<int:point_id>/restore/", VMBackupRestore.as_view(), name="vm_backup_restore"),
        path("vms/<int:pk>/backups/<int:point_id>/restore-in-place/", VMBackupRestoreInPlace.as_view(),
             name="vm_backup_restore_in_place"),
        path("vms/<int:pk>/backups/<int:point_id>/attach/", VMBackupAttach.as_view(), name="vm_backup_attach"),
        path("vms/<int:pk>/backup-disks/<int:attached_id>/detach/", VMBackupDetach.as_view(),
             name="vm_backup_detach"),
        path("vms/<int:pk>/backups/<int:point_id>/health-check/", VMBackupHealthCheck.as_view(),
             name="vm_backup_health_check"),
    ]
