"""The migrate page: choose a destination host and options, queue one operation, go back to the VM."""
from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View

from accounts.access import OPERATE, hosts_for
from accounts.mixins import Access

from domains.migration import MigrateForm, domain_migrate_enqueue
from domains.models import Domain
from domains.services import DomainBusy

TEMPLATE = "domains/migrate.html"


class DomainMigrateView(Access, View):
    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")

    def get(self, request, pk: int):
        domain = self.object
        return _render(request, domain, MigrateForm(domain=domain, user=request.user))

    def post(self, request, pk: int):
        domain = self.object
        form = MigrateForm(request.POST, domain=domain, user=request.user)
        if not form.is_valid():
            return _render(request, domain, form, status=400)
        destination = form.cleaned_data["destination"]
        if not hosts_for(request.user, OPERATE).filter(pk=destination.pk).exists():
            form.add_error("destination", f"Your role does not allow moving VMs to {destination.name}.")
            return _render(request, domain, form, status=403)
        try:
            operation = domain_migrate_enqueue(domain=domain, destination=destination, options=form.options(),
                                               user=request.user)
        except DomainBusy as exc:
            form.add_error(None, f"{domain.name} is {exc}")
            return _render(request, domain, form, status=409)
        messages.info(request, f"{domain.name}: operation #{operation.pk} (migrate to {destination.name}) queued.")
        return redirect("domains:detail", pk=domain.pk)


def _render(request, domain: Domain, form: MigrateForm, status: int = 200):
    return render(request, TEMPLATE, {"domain": domain, "form": form}, status=status)
