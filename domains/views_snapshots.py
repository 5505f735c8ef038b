"""Pages for snapshots, clones and templates. Each validates with its form, queues one operation
through domains.snapshots (refused while the VM is busy) and goes back to the VM's page."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View

from accounts.access import OPERATE
from accounts.mixins import Access

from domains import snapshots
from domains.forms_snapshots import (
    CloneForm, SnapshotCreateForm, SnapshotDeleteForm, SnapshotRevertForm, TemplateForm,
)
from domains.models import Domain
from domains.services import DomainBusy
from operations.models import Operation


class _DomainFormView(Access, View):
    """GET shows the form, POST validates it and queues the operation."""

    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")
    template_name: str
    form_class: type[forms.Form]

    def enqueue(self, request, domain: Domain, form) -> Operation:
        raise NotImplementedError

    def get(self, request, pk: int):
        domain = self.object
        return self.render(request, domain, self.form_class(domain=domain, initial=request.GET.dict()))

    def post(self, request, pk: int):
        domain = self.object
        form = self.form_class(request.POST, domain=domain)
        if not form.is_valid():
            return self.render(request, domain, form, status=400)
        try:
            operation = self.enqueue(request, domain, form)
        except DomainBusy as exc:
            form.add_error(None, f"{domain.name} is {exc}")
            return self.render(request, domain, form, status=409)
        messages.info(request, f"{domain.name}: operation #{operation.pk} ({operation.kind}) queued.")
        return redirect("domains:detail", pk=domain.pk)

    def render(self, request, domain: Domain, form, status: int = 200):
        return render(request, self.template_name, {"domain": domain, "form": form}, status=status)


class SnapshotCreateView(_DomainFormView):
    template_name = "domains/snapshot_create.html"
    form_class = SnapshotCreateForm

    def enqueue(self, request, domain, form):
        return snapshots.snapshot_create(domain=domain, user=request.user, name=form.cleaned_data["name"],
                                         description=form.cleaned_data["description"], with_memory=form.with_memory)


class SnapshotRevertView(_DomainFormView):
    template_name = "domains/snapshot_revert.html"
    form_class = SnapshotRevertForm

    def enqueue(self, request, domain, form):
        return snapshots.snapshot_revert(domain=domain, user=request.user, name=form.cleaned_data["name"])


class SnapshotDeleteView(_DomainFormView):
    template_name = "domains/snapshot_delete.html"
    form_class = SnapshotDeleteForm

    def enqueue(self, request, domain, form):
        return snapshots.snapshot_delete(domain=domain, user=request.user, name=form.cleaned_data["name"],
                                         with_children=form.cleaned_data["with_children"])


class DomainCloneView(_DomainFormView):
    host_need = OPERATE  # the copy is a new VM on the same host
    template_name = "domains/clone.html"
    form_class = CloneForm

    def enqueue(self, request, domain, form):
        return snapshots.domain_clone(domain=domain, user=request.user, name=form.cleaned_data["name"])


class _DomainButtonView(Access, View):
    """A button on the VM's page: POST only; errors come back as messages on that page."""

    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")
    http_method_names = ["post"]
    form_class: type[forms.Form] | None = None

    def enqueue(self, request, domain: Domain, form) -> Operation:
        raise NotImplementedError

    def post(self, request, pk: int):
        domain = self.object
        form = self.form_class(request.POST, domain=domain) if self.form_class else None
        if form is not None and not form.is_valid():
            for error in form.non_field_errors():
                messages.error(request, error)
            return redirect("domains:detail", pk=domain.pk)
        try:
            operation = self.enqueue(request, domain, form)
        except DomainBusy as exc:
            messages.error(request, f"{domain.name} is {exc}")
        else:
            messages.info(request, f"{domain.name}: operation #{operation.pk} ({operation.kind}) queued.")
        return redirect("domains:detail", pk=domain.pk)


class SnapshotRefreshView(_DomainButtonView):
    def enqueue(self, request, domain, form):
        return snapshots.snapshots_refresh(domain=domain, user=request.user)


class DomainTemplateView(_DomainButtonView):
    form_class = TemplateForm

    def enqueue(self, request, domain, form):
        return snapshots.domain_template_mark(domain=domain, user=request.user,
                                              template=form.cleaned_data["template"])
