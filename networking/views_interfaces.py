"""Host interface and network filter pages. Reads from the database; changes are operations."""
from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View
from django.views.generic import DetailView, ListView

from accounts.access import ADMIN, hosts_for
from accounts.mixins import Access

from hosts.models import Host
from networking.forms_interfaces import FilterForm, InterfaceForm, interface_arguments
from networking.models import HostInterface, NetworkFilter
from operations.services import operation_enqueue
from virt.interfaces import READ_ONLY_MESSAGE


class InterfaceListView(Access, ListView):
    template_name = "networking/interface_list.html"
    context_object_name = "hosts"

    def get_queryset(self):
        return hosts_for(self.request.user).prefetch_related("interfaces").order_by("name")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["read_only_message"] = READ_ONLY_MESSAGE
        return context


class DevicesRefreshView(Access, View):
    need, kind = ADMIN, Host
    http_method_names = ["post"]

    def post(self, request, pk: int):
        host = self.object
        operation = operation_enqueue(kind="network.devices_refresh", target=host, host=host, user=request.user)
        messages.info(request, f"{host}: operation #{operation.pk} (read interfaces and filters) queued.")
        return redirect("networking:filters" if request.POST.get("next") == "filters" else "networking:interfaces")


class InterfaceCreateView(Access, View):
    need = ADMIN

    def get(self, request):
        source = HostInterface.objects.filter(pk=request.GET.get("from") or 0).exclude(kind="ethernet").first()
        initial = interface_initial(source) if source else {"host": request.GET.get("host")}
        return self._render(request, InterfaceForm(initial=initial))

    def post(self, request):
        form = InterfaceForm(request.POST)
        if not form.is_valid():
            return self._render(request, form)
        host = form.cleaned_data["host"]
        operation = operation_enqueue(kind="network.interface_define", target=host, host=host, user=request.user,
                                      arguments=interface_arguments(form))
        return redirect("operations:detail", pk=operation.pk)

    def _render(self, request, form):
        hosts = Host.objects.filter(enabled=True).order_by("name")
        read_only = [host for host in hosts if (host.capabilities or {}).get("interface_define") is False]
        return render(request, "networking/interface_form.html",
                      {"form": form, "read_only_hosts": read_only, "read_only_message": READ_ONLY_MESSAGE},
                      status=400 if form.is_bound else 200)


def interface_initial(interface: HostInterface) -> dict:
    """The form's fields for an existing interface: the same name redefines ("edits") it."""
    details = interface.details
    addresses = details.get("addresses") or []
    return {"host": interface.host_id, "kind": interface.kind, "name": interface.name,
            "members": " ".join(details.get("members") or []), "vlan": details.get("vlan"),
            "parent": details.get("parent") or "", "bond_mode": details.get("bond_mode") or "active-backup",
            "mtu": details.get("mtu"), "ipv4": "dhcp" if "ipv4" in (details.get("dhcp") or []) else
            next((address for address in addresses if ":" not in address), ""), "start": interface.active}


class InterfaceDeleteView(Access, View):
    need, kind = ADMIN, HostInterface
    queryset = HostInterface.objects.select_related("host")
    http_method_names = ["post"]

    def post(self, request, pk: int):
        interface = self.object
        if (interface.host.capabilities or {}).get("interface_define") is False:
            messages.error(request, READ_ONLY_MESSAGE)
            return redirect("networking:interfaces")
        operation = operation_enqueue(kind="network.interface_delete", target=interface, host=interface.host,
                                      user=request.user)
        messages.info(request, f"{interface.name}: operation #{operation.pk} (delete) queued.")
        return redirect("networking:interfaces")


class FilterListView(Access, ListView):
    template_name = "networking/filter_list.html"
    context_object_name = "filters"
    paginate_by = 200

    def get_queryset(self):
        return (NetworkFilter.objects.filter(host_id__in=hosts_for(self.request.user).values("pk"))
                .select_related("host").order_by("host__name", "name"))


class FilterDetailView(Access, DetailView):
    kind = NetworkFilter
    template_name = "networking/filter_detail.html"
    context_object_name = "filter"
    queryset = NetworkFilter.objects.select_related("host")


class FilterCreateView(Access, View):
    need = ADMIN

    def get(self, request):
        initial = {"host": request.GET.get("host")}
        source = NetworkFilter.objects.filter(pk=request.GET.get("from") or 0).first()
        if source is not None:  # "edit": start from the filter's XML; the same name redefines it
            initial = {"host": source.host_id, "xml": source.xml}
        return self._render(request, FilterForm(initial=initial))

    def post(self, request):
        form = FilterForm(request.POST)
        if not form.is_valid():
            return self._render(request, form)
        host = form.cleaned_data["host"]
        operation = operation_enqueue(kind="network.filter_define", target=host, host=host, user=request.user,
                                      arguments={"xml": form.cleaned_data["xml"]})
        return redirect("operations:detail", pk=operation.pk)

    def _render(self, request, form):
        return render(request, "networking/filter_form.html", {"form": form}, status=400 if form.is_bound else 200)


class FilterDeleteView(Access, View):
    need, kind = ADMIN, NetworkFilter
    queryset = NetworkFilter.objects.select_related("host")
    http_method_names = ["post"]

    def post(self, request, pk: int):
        item = self.object
        operation = operation_enqueue(kind="network.filter_delete", target=item, host=item.host, user=request.user)
        messages.info(request, f"{item.name}: operation #{operation.pk} (delete) queued.")
        return redirect("networking:filters")
