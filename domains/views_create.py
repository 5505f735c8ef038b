from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from accounts.access import OPERATE, hosts_for
from accounts.mixins import Access

from domains.forms_create import CreateDomainForm, create_arguments
from hosts.choices import HostStatus
from hosts.models import Host
from operations.services import operation_enqueue


class CreateDomainHostView(Access, View):
    """Step one: the host (one the user may operate). Everything after depends on what it can run."""

    need = OPERATE

    def get(self, request):
        hosts = hosts_for(request.user, OPERATE).filter(enabled=True, status=HostStatus.ONLINE)
        if hosts.count() == 1:
            return redirect("domains:create", host_pk=hosts.get().pk)
        return render(request, "domains/create_host.html", {"hosts": hosts})


class CreateDomainView(Access, View):
    """Step two: the VM, with defaults from the host's capabilities."""

    need, kind, pk_kwarg = OPERATE, Host, "host_pk"

    def get(self, request, host_pk: int):
        host = get_object_or_404(Host, pk=host_pk, enabled=True)
        # The ISO library links here with its image as the CD-ROM; the form validates it on POST.
        initial = {name: request.GET[name] for name in ("cdrom_pool", "cdrom_volume") if name in request.GET}
        return self._render(request, CreateDomainForm(host=host, user=request.user, initial=initial))

    def post(self, request, host_pk: int):
        host = get_object_or_404(Host, pk=host_pk, enabled=True)
        form = CreateDomainForm(request.POST, host=host, user=request.user)
        if not form.is_valid():
            return self._render(request, form)
        operation = operation_enqueue(kind="domain.create", target=host, host=host, user=request.user,
                                      arguments=create_arguments(form))
        return redirect("operations:detail", pk=operation.pk)

    def _render(self, request, form: CreateDomainForm):
        return render(request, "domains/create.html", {"form": form, "host": form.host},
                      status=400 if form.is_bound else 200)
