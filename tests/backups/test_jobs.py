"""Backup jobs without a daemon: the form refuses each bad input with a clear message, saving a job
makes and changes its PeriodicTask (django-celery-beat), a run queues one backup per VM it selects
(full every N runs, retention passed on), a failed job backup stays on the dashboard until the next
good one, beat's DatabaseScheduler still schedules CELERY_BEAT_SCHEDULE's tasks, and who may see and
manage jobs on the pages and through the API (accounts.access)."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.models import Grant, Role
from backups.forms import BackupJobForm
from backups.jobs import (backup_job_delete, backup_job_run, backup_job_save, full_reason, job_domains,
                          validate_schedule)
from backups.models import BackupJob, RestorePoint
from domains.choices import DomainState
from domains.models import Domain
from hosts.models import Host
from operations.choices import OperationState
from operations.models import Operation
from storage.models import StoragePool
from tests.api.conftest import token_client
from vmsite.dashboard import attention_list

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_failures_left(login_failures_cleared):
    """API tokens count failed logins in Redis: each test starts with none."""


@pytest.fixture
def site(db):
    now = timezone.now()
    host = Host.objects.create(name="job-host", transport="test", address="default")
    other_host = Host.objects.create(name="job-other", transport="test", address="default")
    vms = {name: Domain.objects.create(host=host, uuid=uuid.uuid4(), name=name, state=DomainState.RUNNING,
                                       synced_at=now) for name in ("web-1", "web-2", "db-1")}
    vms["elsewhere"] = Domain.objects.create(host=other_host, uuid=uuid.uuid4(), name="elsewhere",
                                             state=DomainState.RUNNING, synced_at=now)
    StoragePool.objects.create(host=host, uuid=uuid.uuid4(), name="backups", pool_type="dir", active=True,
                               synced_at=now)
    StoragePool.objects.create(host=host, uuid=uuid.uuid4(), name="lvm", pool_type="logical", active=True,
                               synced_at=now)
    StoragePool.objects.create(host=host, uuid=uuid.uuid4(), name="stopped", pool_type="dir", active=False,
                               synced_at=now)
    return {"host": host, "other_host": other_host, **vms}


def good(site, **changes) -> dict:
    data = {"name": "nightly", "host": site["host"].pk, "selection": "pattern", "pattern": "web-*",
            "pool_name": "backups", "schedule": "30 2 * * *", "full_every": 3, "keep_last": 2, "enabled": "on"}
    return {key: value for key, value in {**data, **changes}.items() if value is not None}


def admin():
    return get_user_model().objects.create_superuser(f"admin-{uuid.uuid4().hex[:6]}", password="x")


def saved_job(site, **changes) -> BackupJob:
    form = BackupJobForm(good(site, **changes), user=admin())
    assert form.is_valid(), form.errors
    return backup_job_save(form.save(commit=False), list(form.cleaned_data["domains"]))


def test_a_schedule_is_five_valid_cron_fields():
    assert validate_schedule(" 30  2 * *  1-5 ") == "30 2 * * 1-5"
    assert validate_schedule("*/15 * * * *") == "*/15 * * * *"
    for bad, words in (("30 2 * *", "has 4 field(s)"), ("every day", "has 2 field(s)"),
                       ("61 2 * * *", "The minute field “61”"), ("0 24 * * *", "The hour field “24”"),
                       ("0 2 32 * *", "The day of month field “32”"), ("0 2 * 13 *", "The month field “13”"),
                       ("0 2 * * 8", "The day of week field “8”"), ("0 x * * *", "The hour field “x”")):
        with pytest.raises(ValidationError) as refused:
            validate_schedule(bad)
        assert words in refused.value.messages[0] and "minute hour day-of-month month day-of-week" in \
            refused.value.messages[0], bad


@pytest.mark.parametrize("changes, field, words", [
    ({"name": ""}, "name", "required"),
    ({"name": "-bad"}, "name", "1 to 64 letters"),
    ({"name": "a/b"}, "name", "1 to 64 letters"),
    ({"host": 999999}, "host", "valid choice"),
    ({"selection": "everything"}, "selection", "valid choice"),
    ({"pattern": ""}, "pattern", "Give the name pattern"),
    ({"selection": "host"}, "pattern", "used only for"),
    ({"selection": "chosen", "pattern": None}, "domains", "Choose at least one VM"),
    ({"pool_name": "lvm"}, "pool_name", "no active dir, fs or netfs pool named 'lvm' (its backup pools: backups)"),
    ({"pool_name": "stopped"}, "pool_name", "no active dir, fs or netfs pool named 'stopped'"),
    ({"pool_name": "nowhere"}, "pool_name", "no active dir"),
    ({"schedule": "daily"}, "schedule", "has 1 field(s)"),
    ({"schedule": "0 25 * * *"}, "schedule", "The hour field “25”"),
    ({"full_every": 0}, "full_every", "N is at least 1: a new chain"),
    ({"full_every": "x"}, "full_every", "whole number"),
    ({"keep_last": 0}, "keep_last", "Keep at least the newest restore point"),
    ({"keep_last": 1001}, "keep_last", "less than or equal to 1000"),
    ({"selection": "tag", "pattern": None, "tag": ""}, "tag", "Give the tag"),
    ({"selection": "tag", "pattern": None, "tag": "   "}, "tag", "Give the tag"),
    ({"selection": "tag", "pattern": None, "tag": "web servers"}, "tag", "“web servers” is not a tag: a tag is 1 to 32"),
    ({"selection": "tag", "pattern": None, "tag": "-web"}, "tag", "is not a tag"),
    ({"tag": "web"}, "tag", "used only for “VMs with a tag”"),
    ({"full_every_unit": "weeks"}, "full_every_unit", "valid choice"),
    ({"full_every_unit": "days", "full_every": 400}, "full_every", "at most 366"),
    ({"keep_daily": -1}, "keep_daily", "greater than or equal to 0"),
    ({"keep_weekly": "x"}, "keep_weekly", "whole number"),
    ({"keep_monthly": 1001}, "keep_monthly", "less than or equal to 1000"),
])
def test_the_form_refuses_each_bad_input_with_a_clear_message(site, changes, field, words):
    form = BackupJobForm(good(site, **changes), user=admin())
    assert not form.is_valid()
    assert any(words in message for message in form.errors.get(field, [])), form.errors


def test_the_form_refuses_vms_of_another_host_and_a_taken_name(site):
    user = admin()
    chosen = good(site, selection="chosen", pattern=None, domains=[site["web-1"].pk, site["elsewhere"].pk])
    form = BackupJobForm(chosen, user=user)
    assert not form.is_valid() and "Not on job-host: elsewhere" in form.errors["domains"][0]
    form = BackupJobForm(good(site, domains=[site["web-1"].pk]), user=user)
    assert not form.is_valid() and "leave them out" in form.errors["domains"][0]
    saved_job(site)
    form = BackupJobForm(good(site), user=user)
    assert not form.is_valid() and "already exists" in form.errors["name"][0]


def test_saving_a_job_makes_and_changes_its_periodic_task_and_deleting_removes_it(site):
    job = saved_job(site)
    task = PeriodicTask.objects.get(pk=job.periodic_task_id)
    assert task.task == "backups.job_run" and task.args == f"[{job.pk}]" and task.enabled
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("30", "2", "*")
    form = BackupJobForm(good(site, schedule="0 */6 * * 1-5", enabled=None), instance=job, user=admin())
    assert form.is_valid(), form.errors
    backup_job_save(form.save(commit=False), [])
    task.refresh_from_db()
    assert (task.crontab.hour, task.crontab.day_of_week, task.enabled) == ("*/6", "1-5", False)
    assert PeriodicTask.objects.filter(task="backups.job_run").count() == 1
    backup_job_delete(job)
    assert not PeriodicTask.objects.filter(pk=task.pk).exists() and not BackupJob.objects.exists()


def test_a_run_backs_up_the_vms_selected_now_full_every_n_runs(site):
    job = saved_job(site)  # web-* on job-host, full every 3 runs, keep 2
    Domain.objects.create(host=site["host"], uuid=uuid.uuid4(), name="web-3", state=DomainState.SHUTOFF,
                          synced_at=timezone.now())  # made after the job: a run still reaches it
    Domain.objects.filter(pk=site["web-2"].pk).update(state=DomainState.CRASHED)
    assert [vm.name for vm in job_domains(job)] == ["web-1", "web-2", "web-3"]
    run = backup_job_run(job)
    assert [operation.target_label.split(":")[0] for operation in run.queued] == ["web-1", "web-3"]
    assert len(run.skipped) == 1 and run.skipped[0].startswith("web-2: web-2 is crashed")
    arguments = run.queued[0].arguments
    assert arguments["pool"] == "backups" and arguments["job"] == job.pk and arguments["keep_last"] == 2
    assert "full backup every 3 run(s)" in arguments["full_reason"]  # the first run starts the chains
    job.refresh_from_db()
    assert job.runs == 1 and "2 backup(s) queued; skipped: web-2" in job.last_run_note
    Operation.objects.filter(kind="backup.create").update(state=OperationState.SUCCEEDED)
    second = backup_job_run(job)
    assert len(second.queued) == 2 and all("full_reason" not in op.arguments for op in second.queued)
    job.refresh_from_db()
    Operation.objects.filter(kind="backup.create").update(state=OperationState.SUCCEEDED)
    backup_job_run(job)
    job.refresh_from_db()
    fourth = backup_job_run(job)  # runs 0 and 3 of every 3 are full
    assert all("full_reason" in op.arguments for op in fourth.queued)


def test_chosen_vms_and_the_whole_host(site):
    job = saved_job(site, selection="chosen", pattern=None, domains=[site["db-1"].pk])
    assert [vm.name for vm in job_domains(job)] == ["db-1"]
    job.selection = BackupJob.Selection.HOST
    assert [vm.name for vm in job_domains(job)] == ["db-1", "web-1", "web-2"]


def test_a_job_by_tag_reaches_the_vms_tagged_when_it_runs(site):
    job = saved_job(site, selection="tag", pattern=None, tag=" Nightly ")
    assert job.tag == "nightly"  # tags are lower-case
    assert list(job_domains(job)) == []
    Domain.objects.filter(pk__in=[site["db-1"].pk, site["elsewhere"].pk]).update(tags=["nightly", "db"])
    Domain.objects.filter(pk=site["web-1"].pk).update(tags=["nightly-not"])
    assert [vm.name for vm in job_domains(job)] == ["db-1"]  # not elsewhere: another host
    Domain.objects.filter(pk=site["web-2"].pk).update(tags=["web", "nightly"])
    assert [operation.target_label.split(":")[0] for operation in backup_job_run(job).queued] == ["db-1", "web-2"]


def test_full_every_n_days_counts_from_the_vms_last_full_point_in_the_pool(site):
    job = saved_job(site, full_every=7, full_every_unit="days", keep_daily=7, keep_weekly=4, keep_monthly=3,
                    health_check="on")
    vm, now = site["web-1"], timezone.now()
    assert full_reason(job, vm, now=now) == ""  # no point yet: the first backup is full anyway

    def point(name, kind, days_ago, pool="backups"):
        return RestorePoint.objects.create(host=site["host"], domain_uuid=vm.uuid, domain_name=vm.name, name=name,
                                           kind=kind, chain=uuid.uuid4(), pool_name=pool, manifest=f"{name}.json",
                                           consistency="x", domain_xml="<domain/>",
                                           created_at=now - timedelta(days=days_ago))

    point("a", "full", 8)
    assert full_reason(job, vm, now=now) == ("the job nightly takes a full backup every 7 day(s), and the last one "
                                             "(a) is 8 day(s) old")
    point("b", "incremental", 1)
    point("c", "full", 9, pool="elsewhere")  # another pool's chain does not count
    assert "(a) is 8 day(s) old" in full_reason(job, vm, now=now)
    point("d", "full", 6)
    assert full_reason(job, vm, now=now) == ""
    arguments = backup_job_run(job).queued[0].arguments
    assert arguments["retention"] == {"last": 2, "daily": 7, "weekly": 4, "monthly": 3}
    assert arguments["health_check"] is True and "full_reason" not in arguments


def test_a_failed_job_backup_needs_attention_until_the_next_good_backup(site):
    user = admin()
    job = saved_job(site)
    operation = backup_job_run(job).queued[0]
    Operation.objects.filter(pk=operation.pk).update(state=OperationState.FAILED, error="The pool is full.",
                                                     finished_at=timezone.now())

    def reasons():
        return [text for item in attention_list(user, [], now=timezone.now()) for _, text in item.reasons
                if text.startswith("Backup of")]

    assert reasons() == ["Backup of web-1 by the job nightly failed: The pool is full."]
    viewer_of_other_host = user_with("viewer", host=site["other_host"]).user
    assert [item for item in attention_list(viewer_of_other_host, [], now=timezone.now())] == []
    Operation.objects.create(kind="backup.create", target_type="domain", target_id=site["web-1"].pk,
                             target_label="web-1: back up", host=site["host"], state=OperationState.SUCCEEDED,
                             arguments={"pool": "backups"})
    assert reasons() == []


def test_a_failed_health_check_needs_attention_until_a_later_check_passes(site):
    from backups.services import restore_point_health_record

    def point(name):
        vm = site["web-1"]
        return RestorePoint.objects.create(host=site["host"], domain_uuid=vm.uuid, domain_name=vm.name, name=name,
                                           kind="full", chain=uuid.uuid4(), pool_name="backups",
                                           manifest=f"{name}.json", consistency="x", domain_xml="<domain/>")

    def reasons(user):
        return [text for item in attention_list(user, [], now=timezone.now()) for _, text in item.reasons
                if text.startswith("The health check")]

    first, second = point("a"), point("b")
    restore_point_health_record(point=first, passed=True, seconds=3, note="ok")
    user = admin()
    assert reasons(user) == []
    restore_point_health_record(point=second, passed=False, seconds=300, note="The guest agent did not answer.")
    assert reasons(user) == ["The health check of web-1's backup b failed: The guest agent did not answer."]
    assert reasons(user_with("viewer", host=site["other_host"]).user) == []  # not their VM
    assert len(reasons(user_with("viewer", domain=site["web-1"]).user)) == 1
    restore_point_health_record(point=first, passed=True, seconds=3, note="ok")  # checked again, later
    assert reasons(user) == []


@pytest.mark.django_db(transaction=True)  # the scheduler closes a connection it finds inside a transaction
def test_beat_still_schedules_the_settings_tasks_from_the_database(settings):
    from django_celery_beat.schedulers import DatabaseScheduler

    from vmsite.celery import app

    DatabaseScheduler(app=app, lazy=False)
    scheduled = set(PeriodicTask.objects.values_list("name", "task"))
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert (name, entry["task"]) in scheduled


# Who may do what ------------------------------------------------------------------------------

def user_with(role: str, **on) -> Client:
    user = get_user_model().objects.create_user(f"{role}-{uuid.uuid4().hex[:6]}", password="x")
    if on:
        Grant.objects.create(user=user, role=Role.OPERATOR if role == "operator" else Role.VIEWER, **on)
    client = Client()
    client.force_login(user)
    client.user = user
    return client


def job_urls(job) -> dict[str, str]:
    return {"edit": reverse("backup_jobs:edit", args=[job.pk]), "delete": reverse("backup_jobs:delete", args=[job.pk]),
            "run": reverse("backup_jobs:run", args=[job.pk]), "api": reverse("api:backup_job", args=[job.pk]),
            "api_run": reverse("api:backup_job_run", args=[job.pk])}


@pytest.mark.parametrize("role, on, sees, manages", [
    ("admin", None, True, True),
    ("operator", "host", True, True),
    ("viewer", "host", True, False),
    ("operator", "web-1", False, False),  # a VM's operator: jobs are the host's
    ("operator", "other_host", False, False),
])
def test_who_sees_and_manages_a_job_on_the_pages_and_the_api(site, role, on, sees, manages):
    job = saved_job(site)
    if role == "admin":
        client = Client()
        client.force_login(admin())
        client.user = get_user_model().objects.filter(is_superuser=True).last()
    else:
        client = user_with(role, **({"host": site[on]} if on in ("host", "other_host") else {"domain": site[on]}))
    urls, api = job_urls(job), token_client(client.user)
    listed = client.get(reverse("backup_jobs:list")).content.decode()
    assert (f'data-job-id="{job.pk}"' in listed) is sees
    assert ([row["name"] for row in api.get(reverse("api:backup_jobs")).json()["results"]] == ["nightly"]) is sees
    assert ("run-now" in listed) is manages
    hidden = 200 if manages else 403 if sees else 404
    assert client.get(urls["edit"]).status_code == hidden
    assert api.get(urls["api"]).status_code == (200 if sees else 404)
    run = client.post(urls["run"])
    assert run.status_code == (302 if manages else hidden)
    assert Operation.objects.filter(kind="backup.create").exists() is manages
    changed = api.put(urls["api"], good(site, keep_last=5, enabled=True), format="json")
    assert changed.status_code == (200 if manages else hidden)
    assert BackupJob.objects.get(pk=job.pk).keep_last == (5 if manages else 2)
    operates_a_host = on == "other_host"  # makes jobs, but not on job-host: that host is not offered
    operates_a_vm = on == "web-1"  # may act, on no host: the form says jobs are host operators'
    made = client.post(reverse("backup_jobs:create"), good(site, name="second"))
    assert made.status_code == (302 if manages else 400 if operates_a_host or operates_a_vm else 403)
    made_by_api = api.post(reverse("api:backup_jobs"), good(site, name="third", enabled=True), format="json")
    assert made_by_api.status_code == (201 if manages else 400 if operates_a_host or operates_a_vm else 403)
    if operates_a_host:
        assert "valid choice" in made_by_api.json()["host"][0]
    if operates_a_vm:
        assert "you operate no host" in made_by_api.json()["non_field_errors"][0]
        assert "you operate no host" in client.get(reverse("backup_jobs:create")).content.decode()
    assert api.delete(urls["api"]).status_code == (204 if manages else hidden)
    assert BackupJob.objects.filter(pk=job.pk).exists() is not manages


def test_the_api_refuses_bad_input_with_the_forms_messages(site):
    api = token_client(admin())
    refused = api.post(reverse("api:backup_jobs"), good(site, schedule="0 2 * *", enabled=True), format="json")
    assert refused.status_code == 400 and "has 4 field(s)" in refused.json()["schedule"][0]
    run = api.post(job_urls(saved_job(site))["api_run"])
    assert run.status_code == 202 and len(run.json()["operations"]) == 2 and run.json()["skipped"] == []


def test_a_vm_a_run_skipped_needs_attention_until_the_next_run(site):
    user = admin()
    job = saved_job(site)
    Domain.objects.filter(pk=site["web-2"].pk).update(state=DomainState.CRASHED)
    backup_job_run(job)

    def reasons(who=user):
        return [text for item in attention_list(who, [], now=timezone.now()) for _, text in item.reasons
                if text.startswith("The job")]

    assert reasons() == ["The job nightly skipped at its last run: web-2: web-2 is crashed: a backup is taken of a "
                         "running, paused or shut-off VM."]
    assert reasons(user_with("viewer", host=site["other_host"]).user) == []
    Domain.objects.filter(pk=site["web-2"].pk).update(state=DomainState.RUNNING)
    Operation.objects.filter(kind="backup.create").update(state=OperationState.SUCCEEDED)
    job.refresh_from_db()
    backup_job_run(job)
    assert reasons() == []


def test_the_pages_make_change_and_delete_a_job(site):
    client = Client()
    client.force_login(admin())
    form = client.get(reverse("backup_jobs:create")).content.decode()
    assert 'id="job-form"' in form and "web-1 (job-host)" in form and "elsewhere (job-other)" in form
    refused = client.post(reverse("backup_jobs:create"), good(site, schedule="every night"))
    assert refused.status_code == 400 and "has 2 field(s)" in refused.content.decode()
    chosen = good(site, selection="chosen", pattern=None, domains=[site["web-2"].pk, site["db-1"].pk])
    assert client.post(reverse("backup_jobs:create"), chosen).status_code == 302
    job = BackupJob.objects.get()
    assert sorted(job.domains.values_list("name", flat=True)) == ["db-1", "web-2"]
    edit = client.get(reverse("backup_jobs:edit", args=[job.pk])).content.decode()
    assert f'<option value="{site["web-2"].pk}" selected>' in edit and f'<option value="{site["web-1"].pk}" >' in edit
    listed = client.get(reverse("backup_jobs:list")).content.decode()
    assert "db-1, web-2" in listed and "<code>30 2 * * *</code>" in listed
    ran = client.post(reverse("backup_jobs:run", args=[job.pk]), follow=True).content.decode()
    assert "2 backup(s) queued" in ran
    assert client.post(reverse("backup_jobs:delete", args=[job.pk])).status_code == 302
    assert not BackupJob.objects.exists() and not PeriodicTask.objects.filter(task="backups.job_run").exists()
