"""Pages of the backups app: "back up now" and "health check" (buttons on the VM's page) and "restore as a new VM"
(a form, on any host the user operates; backups/views_restores.py has in place and attach). Each validates with its
form, queues one operation and goes back to the VM's page."""
from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views import View

from accounts.access import OPERATE, health_check_refusal, restore_hosts_for, restore_points_for, restore_refusal
from accounts.mixins import Access
from backups.forms import BackupNowForm, RestoreForm
from backups.models import RestorePoint
from backups.restores import restore_elsewhere_enqueue
from backups.services import BackupRefused, backup_enqueue, health_check_enqueue, restore_enqueue
from domains.models import Domain
from operations.models import Operation
from operations.services import OperationBusy


class BackupNowView(Access, View):
    need, kind = OPERATE, Domain
    http_method_names = ["post"]

    def post(self, request, pk: int):
        domain = self.object
        form = BackupNowForm(request.POST, domain=domain, user=request.user)
        return queue_from_form(request, domain, form,
                               lambda data: backup_enqueue(domain=domain, user=request.user, pool=data["pool"]),
                               refused=(OperationBusy, BackupRefused), label="backup")


def queue_from_form(request: HttpRequest, domain: Domain, form, queue: Callable[[dict], Operation], *,
                    refused: tuple[type[Exception], ...], label: str = "") -> HttpResponse:
    """Queue the operation a valid form asks for and go back to the VM's page, where the form's
    errors, a refusal or "queued" (with `label`, else the operation's kind) show as messages."""
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("domains:detail", pk=domain.pk)
    return queue_on_vm_page(request, domain, lambda: queue(form.cleaned_data), refused=refused, label=label)


def queue_on_vm_page(request: HttpRequest, domain: Domain, queue: Callable[[], Operation], *,
                     refused: tuple[type[Exception], ...], label: str = "") -> HttpResponse:
    """Queue an operation and go back to the VM's page, saying it was queued or why not."""
    try:
        operation = queue()
    except refused as exc:
        messages.error(request, f"{domain.name}: {exc}")
    else:
        messages.info(request, f"{domain.name}: operation #{operation.pk} ({label or operation.kind}) queued.")
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
    """Restore a restore point as a new VM: on its own host, or on another host the user operates,
    read from where it was taken or from one of its copies."""

    need, kind = OPERATE, Domain
    template_name = "backups/restore.html"
    needs_an_operated_host = True  # the new VM is made on a host the user operates (restore_refusal)

    def _point(self, request, pk: int, point_id: int) -> RestorePoint:
        point = restore_point_of(request.user, self.object, point_id)
        if not restore_hosts_for(request.user).exists():  # no host at all to make the new VM on
            raise PermissionDenied(restore_refusal(request.user, self.object, point))
        return point

    def get(self, request, pk: int, point_id: int):
        point = self._point(request, pk, point_id)
        initial = {"name": f"{point.domain_name}-{point.name}"[:64], "host": point.host_id}
        return self.render(request, point, RestoreForm(point=point, user=request.user, initial=initial))

    def post(self, request, pk: int, point_id: int):
        point = self._point(request, pk, point_id)
        form = RestoreForm(request.POST, point=point, user=request.user)
        if form.is_valid():
            refusal = restore_refusal(request.user, self.object, point, form.cleaned_data["host"])
            if refusal:
                form.add_error(None, refusal)
        if not form.is_valid():
            return self.render(request, point, form, status=400)
        try:
            operation = restore_queue(form, user=request.user)
        except OperationBusy as exc:
            form.add_error(None, f"The backup {point.name} is {exc}")
            return self.render(request, point, form, status=409)
        messages.info(request, f"{point}: operation #{operation.pk} (restore as {form.cleaned_data['name']}) queued.")
        return redirect("domains:detail", pk=self.object.pk)

    def render(self, request, point: RestorePoint, form, status: int = 200):
        return render(request, self.template_name, {"domain": self.object, "point": point, "form": form},
                      status=status)


def restore_queue(form: RestoreForm, *, user):
    """The restore the valid form asks for: on the point's own host and pool, or anywhere else."""
    data = form.cleaned_data
    if form.elsewhere:
        return restore_elsewhere_enqueue(point=form.point, user=user, name=data["name"], pool=data["pool"],
                                         copy=data.get("source"), network=data.get("network"))
    return restore_enqueue(point=form.point, user=user, name=data["name"], pool=data["pool"])
