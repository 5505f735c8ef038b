"""Backup jobs: their schedule (a cron expression, kept as a django-celery-beat PeriodicTask that
beat's DatabaseScheduler runs), which VMs a run reaches, and a run: one backup.create operation per
VM, each of which prunes that VM's older restore points in the job's pool once its own point is
saved (backups/handlers.py, backups/retention.py)."""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_celery_beat import validators as cron
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from backups.models import BackupJob, RestorePoint
from backups.services import BackupRefused, backup_enqueue
from domains.models import Domain
from operations.models import Operation
from operations.services import OperationBusy
from storage.models import StoragePool

JOB_TASK = "backups.job_run"  # backups/tasks.py
CRON_FIELDS = (("minute", cron.minute_validator), ("hour", cron.hour_validator),
               ("day of month", cron.day_of_month_validator), ("month", cron.month_of_year_validator),
               ("day of week", cron.day_of_week_validator))
CRON_RULE = ("Five fields, as cron: minute hour day-of-month month day-of-week; for example “30 2 * * *” "
             "(02:30 every day) or “0 */6 * * 1-5” (every 6 hours on weekdays). Times are " + settings.TIME_ZONE + ".")


def validate_schedule(text: str) -> str:
    """The cron expression, its fields separated by single spaces, or a ValidationError saying which field is wrong."""
    fields = text.split()
    if len(fields) != len(CRON_FIELDS):
        raise ValidationError(f"“{text.strip()}” has {len(fields)} field(s). {CRON_RULE}")
    for value, (label, validator) in zip(fields, CRON_FIELDS):
        try:
            validator(value)
        except (ValidationError, ValueError):
            raise ValidationError(f"The {label} field “{value}” is not valid. {CRON_RULE}") from None
    return " ".join(fields)


@transaction.atomic
def backup_job_save(job: BackupJob, domains: list[Domain] | None = None) -> BackupJob:
    """Save the job (and its chosen VMs) and the PeriodicTask beat runs it by."""
    job.save()
    if domains is not None:
        job.domains.set(domains)
    minute, hour, day_of_month, month, day_of_week = job.schedule.split()
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week,
        timezone=settings.TIME_ZONE)
    task = job.periodic_task or PeriodicTask(name=f"backup job {job.pk}", task=JOB_TASK)
    task.crontab, task.args, task.enabled = crontab, json.dumps([job.pk]), job.enabled
    task.description = f"vmsite {job}"
    task.save()
    if job.periodic_task_id != task.pk:
        job.periodic_task = task
        job.save(update_fields=["periodic_task"])
    return job


@transaction.atomic
def backup_job_delete(job: BackupJob) -> None:
    """The job and its schedule go; its restore points stay (they are the VMs')."""
    task = job.periodic_task
    job.delete()
    if task is not None:
        task.delete()


def job_domains(job: BackupJob) -> QuerySet[Domain]:
    """The VMs a run of the job backs up now, by name."""
    domains = Domain.objects.filter(host_id=job.host_id).select_related("host").order_by("name")
    if job.selection == BackupJob.Selection.CHOSEN:
        return domains.filter(pk__in=job.domains.values("pk"))
    if job.selection == BackupJob.Selection.PATTERN:
        names = [name for name in domains.values_list("name", flat=True) if fnmatch.fnmatchcase(name, job.pattern)]
        return domains.filter(name__in=names)
    if job.selection == BackupJob.Selection.TAG:  # in Python: JSON "contains" differs between databases
        tagged = [pk for pk, tags in domains.values_list("pk", "tags") if job.tag in (tags or [])]
        return domains.filter(pk__in=tagged)
    return domains


def full_reason(job: BackupJob, domain: Domain, *, now: datetime | None = None) -> str:
    """Why this run of the job starts a new chain for the VM ("": it need not). Every N runs: the
    job's run count says; every N days: the VM's newest full point in the job's pool does."""
    if job.full_every_unit == BackupJob.FullEvery.RUNS:
        if job.runs % job.full_every == 0:
            return f"the job {job.name} takes a full backup every {job.full_every} run(s)"
        return ""
    last_full = (RestorePoint.objects.filter(domain_uuid=domain.uuid, host_id=job.host_id, pool_name=job.pool_name,
                                             kind=RestorePoint.Kind.FULL).order_by("-created_at").first())
    if last_full is None:
        return ""  # the first backup in the pool is full anyway
    age = (now or timezone.now()) - last_full.created_at
    if age >= timedelta(days=job.full_every):
        return (f"the job {job.name} takes a full backup every {job.full_every} day(s), and the last one "
                f"({last_full.name}) is {age.days} day(s) old")
    return ""



@dataclass
class JobRun:
    queued: list[Operation]
    skipped: list[str]  # "<vm>: why"

    def describe(self) -> str:
        text = f"{len(self.queued)} backup(s) queued" if self.queued or self.skipped else "no VM is selected now"
        return f"{text}; skipped: {'; '.join(self.skipped)}" if self.skipped else text


def backup_job_run(job: BackupJob, *, user: AbstractBaseUser | None = None) -> JobRun:
    """Queue one backup.create per VM the job reaches (full every N runs or days: full_reason), each
    told to prune by the job's retention once its point is saved (and to health-check it, when the
    job says so). A VM busy or in a state that allows no backup is skipped and said so in the job's
    last run note."""
    pool = StoragePool.objects.filter(host_id=job.host_id, name=job.pool_name).first()
    run = JobRun(queued=[], skipped=[])
    domains = list(job_domains(job))
    if pool is None:
        run.skipped = [f"{domain.name}: the pool {job.pool_name} is not on {job.host} any more" for domain in domains]
    for domain in domains if pool is not None else []:
        try:
            run.queued.append(backup_enqueue(domain=domain, user=user, pool=pool, job=job,
                                             full_reason=full_reason(job, domain)))
        except (OperationBusy, BackupRefused) as exc:
            run.skipped.append(f"{domain.name}: {exc}")
    BackupJob.objects.filter(pk=job.pk).update(runs=job.runs + 1, last_run_at=timezone.now(),
                                               last_run_note=run.describe()[:10000], last_run_skipped=run.skipped)
    return run
