"""Pages of the backups app: "back up now" and "health check" (buttons on the VM's page) and "restore
as a new VM" (a form). Each validates with its form, queues one operation and goes back to the VM's page."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views import View

from accounts.access import OPERATE, health_check_refusal, restore_points_for, restore_refusal
from accounts.mixins import Access
from backups.forms import BackupNowForm, RestoreForm
from backups.models import RestorePoint
from backups.services import BackupRefused, backup_enqueue, health_check_enqueue, restore_enqueue
from domains.models import Domain
from operations.services import OperationBusy


class BackupNowView(Access, View):
    need, kind = OPERATE, Domain
    http_method_names = ["post"]

    def post(self, request, pk: int):
        domain = self.object
        form = BackupNowForm(request.POST, domain=domain, user=request.user)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return redirect("domains:detail", pk=domain.pk)
        try:
            operation = backup_enqueue(domain=domain, user=request.user, pool=form.cleaned_data["pool"])
        except (OperationBusy, BackupRefused) as exc:
            messages.error(request, f"{domain.name}: {exc}")
        else:
            messages.info(request, f"{domain.name}: operation #{operation.pk} (backup) queued.")
        return redirect("domains:detail", pk=domain.pk)


def restore_point_of(user, domain: Domain, point_id: int) -> RestorePoint:
    """One of the VM's restore points the user may see, or 404."""
    point = restore_points_for(user, domain).select_related("host").filter(pk=point_id).first()
    if point is None:
        raise Http404("No such restore point.")
    return point


class HealthCheckView(Access, View):
    """Health-check a restore point: boot it in a temporary VM with no network (a button on the VM's page)."""

    need, kind = OPERATE, Domain
    http_method_names = ["post"]

    def post(self, request, pk: int, point_id: int):
        point = restore_point_of(request.user, self.object, point_id)
        refusal = health_check_refusal(request.user, self.object, point)
        if refusal:
            raise PermissionDenied(refusal)
        try:
            operation = health_check_enqueue(point=point, user=request.user)
        except OperationBusy as exc:
            messages.error(request, f"The backup {point.name} is {exc}")
        else:
            messages.info(request, f"{point}: operation #{operation.pk} (health check) queued.")
        return redirect("domains:detail", pk=self.object.pk)


class RestoreView(Access, View):
    """Restore a restore point as a new VM on the host that holds its files."""

    need, kind = OPERATE, Domain
    host_need = OPERATE  # a new VM on the host (the point's host is checked too: restore_refusal)
    template_name = "backups/restore.html"

    def _point(self, request, pk: int, point_id: int) -> RestorePoint:
        point = restore_point_of(request.user, self.object, point_id)
        refusal = restore_refusal(request.user, self.object, point)
        if refusal:
            raise PermissionDenied(refusal)
        return point

    def get(self, request, pk: int, point_id: int):
        point = self._point(request, pk, point_id)
        initial = {"name": f"{point.domain_name}-{point.name}"[:64]}
        return self.render(request, point, RestoreForm(point=point, user=request.user, initial=initial))

    def post(self, request, pk: int, point_id: int):
        point = self._point(request, pk, point_id)
        form = RestoreForm(request.POST, point=point, user=request.user)
        if not form.is_valid():
            return self.render(request, point, form, status=400)
        try:
            operation = restore_enqueue(point=point, user=request.user, name=form.cleaned_data["name"],
                                        pool=form.cleaned_data["pool"])
        except OperationBusy as exc:
            form.add_error(None, f"The backup {point.name} is {exc}")
            return self.render(request, point, form, status=409)
        messages.info(request, f"{point}: operation #{operation.pk} (restore as {form.cleaned_data['name']}) queued.")
        return redirect("domains:detail", pk=self.object.pk)

    def render(self, request, point: RestorePoint, form, status: int = 200):
        return render(request, self.template_name, {"domain": self.object, "point": point, "form": form},
                      status=status)
