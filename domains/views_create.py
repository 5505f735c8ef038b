from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from accounts.access import OPERATE, hosts_for, may_define_pools_and_networks, operations_for
from accounts.mixins import Access

from domains.forms_create import CreateDomainForm, create_arguments
from domains.host_defaults import OfferRefused, default_network_enqueue, default_pool_enqueue
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
        host = self.enabled_host()
        # The ISO library links here with its image as the CD-ROM; the form validates it on POST.
        initial = {name: request.GET[name] for name in ("cdrom_pool", "cdrom_volume") if name in request.GET}
        return self._render(request, CreateDomainForm(host=host, user=request.user, initial=initial))

    def post(self, request, host_pk: int):
        host = self.enabled_host()
        form = CreateDomainForm(request.POST, host=host, user=request.user)
        if not form.is_valid():
            return self._render(request, form)
        operation = operation_enqueue(kind="domain.create", target=host, host=host, user=request.user,
                                      arguments=create_arguments(form))
        return redirect("operations:detail", pk=operation.pk)

    def enabled_host(self) -> Host:
        """A disabled host takes no new VM: its wizard is not found (after the access check, which
        answers first, as for any host)."""
        if not self.object.enabled:
            raise Http404("No such host.")
        return self.object

    def _render(self, request, form: CreateDomainForm):
        return render(request, "domains/create.html",
                      {"form": form, "host": form.host,
                       "may_define_defaults": may_define_pools_and_networks(request.user, form.host)},
                      status=400 if form.is_bound else 200)


DEFAULT_MAKERS = {"pool": default_pool_enqueue, "network": default_network_enqueue}


class CreateDomainDefaultView(Access, View):
    """The wizard's offer on a host with no pool or network: queue the host's default one. Answers
    JSON for the wizard's script, which then waits on CreateDomainChoicesView."""

    need, kind, pk_kwarg = OPERATE, Host, "host_pk"

    def post(self, request, host_pk: int, what: str):
        if what not in DEFAULT_MAKERS:
            raise Http404("No such default.")
        host = self.object
        if not may_define_pools_and_networks(request.user, host):
            return JsonResponse({"error": f"Only an administrator may define pools and networks on {host.name}."},
                                status=403)
        try:
            operation = DEFAULT_MAKERS[what](host=host, user=request.user)
        except OfferRefused as exc:
            return JsonResponse({"error": str(exc)}, status=409)
        return JsonResponse({"operation": operation.pk, "url": reverse("operations:detail", args=[operation.pk])},
                            status=202)


class CreateDomainChoicesView(Access, View):
    """The pools and networks the wizard may offer now, and how an operation of the offer stands."""

    need, kind, pk_kwarg = OPERATE, Host, "host_pk"

    def get(self, request, host_pk: int):
        form = CreateDomainForm(host=self.object, user=request.user)
        answer = {"pools": [name for name, _label in form.fields["disk_pool"].choices if name],
                  "networks": [name for name, _label in form.fields["nic_network"].choices if name]}
        wanted = request.GET.get("operation", "")
        operation = (operations_for(request.user).filter(pk=int(wanted)).first()
                     if wanted.isascii() and wanted.isdigit() and len(wanted) < 12 else None)
        if operation is not None:
            answer["operation"] = {"state": operation.state, "finished": operation.is_finished,
                                   "error": operation.error or ""}
        return JsonResponse(answer)
