"""The task beat runs for a backup job (its PeriodicTask, backups/jobs.py)."""
from __future__ import annotations

from celery import shared_task

from backups.jobs import JOB_TASK, backup_job_run
from backups.models import BackupJob


@shared_task(name=JOB_TASK)
def job_run(job_id: int) -> str:
    job = BackupJob.objects.filter(pk=job_id, enabled=True).select_related("host").first()
    if job is None:
        return "no such enabled job"
    return backup_job_run(job).describe()
