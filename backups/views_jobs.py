"""Pages of backup jobs: the list (a host's viewers see its jobs), make and change one (its host's
operators), delete one, and run one now. Rights are accounts.access's, through the Access mixin."""
from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View

from accounts.access import OPERATE, VIEW, backup_job_hosts_for, backup_jobs_for
from accounts.mixins import Access
from backups.forms import BackupJobForm
from backups.jobs import backup_job_delete, backup_job_run, backup_job_save
from backups.models import BackupJob


class JobListView(Access, View):
    need, kind = VIEW, None

    def get(self, request):
        jobs = backup_jobs_for(request.user).select_related("host").prefetch_related("domains")
        may_make = backup_job_hosts_for(request.user).exists()
        managed = {job.pk for job in jobs.filter(host__in=backup_job_hosts_for(request.user))}
        return render(request, "backups/jobs.html", {"jobs": jobs, "may_make": may_make, "managed": managed})


class JobEditView(Access, View):
    """Change a job (JobCreateView: make one)."""

    need, kind = OPERATE, BackupJob
    template_name = "backups/job_form.html"

    def get(self, request, pk: int | None = None):
        return self.render(request, BackupJobForm(instance=self.object, user=request.user))

    def post(self, request, pk: int | None = None):
        form = BackupJobForm(request.POST, instance=self.object, user=request.user)
        if not form.is_valid():
            return self.render(request, form, status=400)
        job = backup_job_save(form.save(commit=False), list(form.cleaned_data["domains"]))
        messages.info(request, f"Backup job {job.name} saved.")
        return redirect("backup_jobs:list")

    def render(self, request, form, status: int = 200):
        return render(request, self.template_name, {"form": form, "job": self.object}, status=status)


class JobCreateView(JobEditView):
    """Make a job, on a host the user operates: the form offers only those, and says so when there
    are none (a VM's operator may act, but on no host)."""

    kind = None


class JobDeleteView(Access, View):
    need, kind = OPERATE, BackupJob
    http_method_names = ["post"]

    def post(self, request, pk: int):
        name = self.object.name
        backup_job_delete(self.object)
        messages.info(request, f"Backup job {name} deleted; its restore points stay.")
        return redirect("backup_jobs:list")


class JobRunView(Access, View):
    need, kind = OPERATE, BackupJob
    http_method_names = ["post"]

    def post(self, request, pk: int):
        run = backup_job_run(self.object, user=request.user)
        (messages.warning if run.skipped else messages.info)(request, f"Backup job {self.object.name}: {run.describe()}.")
        return redirect("backup_jobs:list")
