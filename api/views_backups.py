"""Backups through the API: a VM's restore points, "back up now", "health check" and "restore as a new VM", with the
pages' forms (what is accepted) and services (what is queued), and the same rights."""
from __future__ import annotations

from django.urls import path
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied

from accounts.access import OPERATE, VIEW, health_check_refusal, restore_refusal
from api import forms as api_forms
from api.base import ApiListView, ApiView, enqueue
from api.serializers import QueuedSerializer, queues
from backups.forms import BackupNowForm, RestoreForm
from backups.models import RestorePoint, RestorePointDisk
from backups.selectors import restore_points_list
from backups.services import BackupRefused, backup_enqueue, health_check_enqueue, restore_enqueue
from backups.views import restore_point_of
from domains.models import Domain
from operations.services import OperationBusy


class RestorePointDiskSerializer(serializers.ModelSerializer):
    class Meta:
        model = RestorePointDisk
        fields = ["target", "source", "volume", "format", "capacity", "size", "sha256"]


class RestorePointSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="name", read_only=True)
    disks = RestorePointDiskSerializer(many=True, read_only=True)

    class Meta:
        model = RestorePoint
        fields = ["id", "name", "kind", "parent", "chain", "state", "host", "pool_name", "domain_uuid", "domain_name",
                  "consistency", "note", "seconds", "created_at", "disks", "health", "health_checked_at",
                  "health_seconds", "health_note"]


BackupBody = api_forms.schema_for(BackupNowForm, "BackupNow")
RestoreBody = api_forms.schema_for(RestoreForm, "Restore")


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
    """Restore one of the VM's restore points as a new VM on the host that holds its files."""

    need, kind = OPERATE, Domain
    host_need = OPERATE  # a new VM on the host (the point's host is checked too: restore_refusal)
    queryset = Domain.objects.select_related("host")
    serializer_class = RestoreBody

    @queues(RestoreBody)
    def post(self, request, pk: int, point_id: int):
        domain = self.object
        point = restore_point_of(request.user, domain, point_id)
        refusal = restore_refusal(request.user, domain, point)
        if refusal:
            raise PermissionDenied(refusal)
        cleaned = api_forms.valid(RestoreForm(api_forms.body(request), point=point, user=request.user))
        return enqueue(lambda: restore_enqueue(point=point, user=request.user, name=cleaned["name"],
                                               pool=cleaned["pool"]), OperationBusy)


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
        path("vms/<int:pk>/backups/<int:point_id>/health-check/", VMBackupHealthCheck.as_view(),
             name="vm_backup_health_check"),
    ]
