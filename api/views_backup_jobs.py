"""Backup jobs through the API: list and make (POST), read, change (PUT, the whole job) and delete
one, and run one now, with the pages' form (what is accepted), services and rights."""
from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.access import OPERATE, VIEW, backup_jobs_for
from api import forms as api_forms
from api.base import ApiDetailView, ApiListView, ApiView
from api.serializers import REFUSED
from backups.forms import BackupJobForm
from backups.jobs import backup_job_delete, backup_job_run, backup_job_save
from backups.models import BackupJob


class BackupJobSerializer(serializers.ModelSerializer):
    domains = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = BackupJob
        fields = ["id", "name", "host", "selection", "domains", "pattern", "tag", "pool_name", "schedule", "full_every",
                  "full_every_unit", "keep_last", "keep_daily", "keep_weekly", "keep_monthly", "health_check",
                  "copy_host", "copy_pool_name", "enabled", "runs", "last_run_at", "last_run_note", "created_at"]


class JobRunSerializer(serializers.Serializer):
    operations = serializers.ListField(child=serializers.IntegerField(), help_text="One backup.create per VM.")
    skipped = serializers.ListField(child=serializers.CharField(), help_text="VMs not backed up, and why.")


JobBody = api_forms.schema_for(BackupJobForm, "BackupJobBody")


def _saved(request, instance: BackupJob | None) -> BackupJob:
    form = BackupJobForm(api_forms.body(request), instance=instance, user=request.user)
    cleaned = api_forms.valid(form)
    return backup_job_save(form.save(commit=False), list(cleaned["domains"]))


class BackupJobs(ApiListView):
    """GET: the backup jobs on hosts you may see. POST: make one, on a host you operate (the form offers only those)."""

    need, kind = {"GET": VIEW, "POST": OPERATE}, None
    serializer_class = BackupJobSerializer

    def get_queryset(self):
        return backup_jobs_for(self.request.user).select_related("host").prefetch_related("domains")

    @extend_schema(request=JobBody, responses={201: BackupJobSerializer, **REFUSED})
    def post(self, request):
        job = _saved(request, None)
        return Response(BackupJobSerializer(job).data, status=status.HTTP_201_CREATED)


class BackupJobDetail(ApiDetailView):
    """GET: one job. PUT: change it (every field, as when made). DELETE: remove it (its restore points stay)."""

    need, kind = {"GET": VIEW, "PUT": OPERATE, "DELETE": OPERATE}, BackupJob
    queryset = BackupJob.objects.select_related("host").prefetch_related("domains")
    serializer_class = BackupJobSerializer

    @extend_schema(request=JobBody, responses={200: BackupJobSerializer, **REFUSED})
    def put(self, request, pk: int):
        return Response(BackupJobSerializer(_saved(request, self.object)).data)

    def delete(self, request, pk: int):
        backup_job_delete(self.object)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BackupJobRun(ApiView):
    """Run the job now: one backup operation per VM it selects."""

    need, kind = OPERATE, BackupJob
    queryset = BackupJob.objects.select_related("host")
    serializer_class = JobRunSerializer

    @extend_schema(request=None, responses={202: JobRunSerializer, **REFUSED})
    def post(self, request, pk: int):
        run = backup_job_run(self.object, user=request.user)
        return Response({"operations": [operation.pk for operation in run.queued], "skipped": run.skipped},
                        status=status.HTTP_202_ACCEPTED)


def urlpatterns() -> list:
    return [
        path("backup-jobs/", BackupJobs.as_view(), name="backup_jobs"),
        path("backup-jobs/<int:pk>/", BackupJobDetail.as_view(), name="backup_job"),
        path("backup-jobs/<int:pk>/run/", BackupJobRun.as_view(), name="backup_job_run"),
    ]
