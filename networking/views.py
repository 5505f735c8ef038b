"""Network pages. Each declares its form and its service; none calls libvirt."""
from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views import View
from django.views.generic import DetailView, ListView

from accounts.access import ADMIN, hosts_for, operations_for
from accounts.mixins import Access, LiveFragments
from networking import forms, selectors, services
from networking.models import VirtualNetwork
from operations.services import operation_busy_with

# Buttons on a network's page: (action, label, icon, style, shown when)
BUTTONS = [
    ("start", "Start", "play-fill", "success", lambda n: not n.active),
    ("stop", "Stop", "stop-fill", "outline-danger", lambda n: n.active),
    ("autostart_on", "Autostart on", "toggle-off", "outline-secondary", lambda n: n.persistent and not n.autostart),
    ("autostart_off", "Autostart off", "toggle-on", "outline-secondary", lambda n: n.persistent and n.autostart),
    ("refresh", "Refresh", "arrow-repeat", "outline-secondary", lambda n: True),
]
SIMPLE_ACTIONS = {button[0] for button in BUTTONS}


class NetworkListView(Access, LiveFragments, ListView):
    template_name = "networking/network_list.html"
    fragments = {"network-list-live": "networking/_network_list_live.html"}
    context_object_name = "networks"
    paginate_by = 100

    def get_queryset(self):
        host = self.request.GET.get("host", "")
        return selectors.network_list(host_id=int(host) if host.isdigit() else None,
                                      search=self.request.GET.get("q", "").strip()
                                      ).filter(host_id__in=hosts_for(self.request.user).values("pk"))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["hosts"] = hosts_for(self.request.user).only("pk", "name")
        query = self.request.GET.copy()
        query.pop("page", None)
        context["query_string"] = query.urlencode()
        return context


class NetworkDetailView(Access, LiveFragments, DetailView):
    kind = VirtualNetwork
    template_name = "networking/network_detail.html"
    fragments = {"network-head": "networking/_network_head.html", "network-page": "networking/_network_page.html"}
    context_object_name = "network"
    queryset = VirtualNetwork.objects.select_related("host")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        network = self.object
        context.update(
            leases=network.leases.all(),
            attached=selectors.attached_nics(network),
            operations=operations_for(self.request.user).filter(target_type="virtualnetwork", target_id=network.pk)
            .select_related("user")[:10],
            busy=operation_busy_with(network),
            buttons=[button for button in BUTTONS if button[4](network)],
        )
        context.setdefault("lease_form", forms.StaticLeaseForm(network=network))
        context.setdefault("dns_form", forms.DNSHostForm(network=network))
        return context


class NetworkCreateView(Access, View):
    need = ADMIN

    def get(self, request):
        return self._render(request, forms.NetworkForm(initial={"host": request.GET.get("host")}))

    def post(self, request):
        form = forms.NetworkForm(request.POST)
        if not form.is_valid():
            return self._render(request, form)
        operation = services.network_create_enqueue(host=form.cleaned_data["host"], user=request.user,
                                                    arguments=forms.network_arguments(form))
        messages.info(request, f"Network {form.cleaned_data['name']}: operation #{operation.pk} (create) queued.")
        return redirect("operations:detail", pk=operation.pk)

    def _render(self, request, form):
        return render(request, "networking/network_form.html", {"form": form}, status=400 if form.is_bound else 200)


def _enqueue(request, network: VirtualNetwork, action: str, arguments: dict | None = None) -> bool:
    try:
        operation = services.network_action_enqueue(network=network, action=action, user=request.user,
                                                    arguments=arguments)
    except services.NetworkBusy as exc:
        messages.error(request, f"{network.name} is {exc}")
        return False
    messages.info(request, f"{network.name}: operation #{operation.pk} "
                           f"({services.NETWORK_ACTIONS[action].lower()}) queued.")
    return True


class NetworkActionView(Access, View):
    need, kind = ADMIN, VirtualNetwork
    queryset = VirtualNetwork.objects.select_related("host")
    http_method_names = ["post"]

    def post(self, request, pk: int, action: str):
        if action not in SIMPLE_ACTIONS:
            raise Http404("No such action")
        network = self.object
        _enqueue(request, network, action)
        return redirect("networking:detail", pk=network.pk)


class NetworkDeleteView(Access, View):
    need, kind = ADMIN, VirtualNetwork
    queryset = VirtualNetwork.objects.select_related("host")

    def get(self, request, pk: int):
        network = self.object
        return render(request, "networking/network_delete.html", {"network": network,
                                                                   "attached": selectors.attached_nics(network)})

    def post(self, request, pk: int):
        network = self.object
        if request.POST.get("confirm_name") != network.name:
            messages.error(request, f"Type the network's name, {network.name}, to confirm.")
            return render(request, "networking/network_delete.html",
                          {"network": network, "attached": selectors.attached_nics(network)}, status=400)
        _enqueue(request, network, "delete")
        return redirect("networking:detail", pk=network.pk)


class NetworkEditView(Access, View):
    need, kind = ADMIN, VirtualNetwork
    queryset = VirtualNetwork.objects.select_related("host")

    def get(self, request, pk: int):
        network = self.object
        form = forms.NetworkEditForm(network=network, initial=forms.NetworkEditForm.initial_for(network))
        return self._render(request, network, form)

    def post(self, request, pk: int):
        network = self.object
        form = forms.NetworkEditForm(request.POST, network=network)
        if not form.is_valid():
            return self._render(request, network, form)
        data = form.cleaned_data
        if _enqueue(request, network, "edit", {
                "dhcp_range": data["dhcp_range"], "domain": data.get("domain") or None, "mtu": data.get("mtu"),
                "inbound_kbps": data.get("inbound_kbps"), "outbound_kbps": data.get("outbound_kbps")}):
            return redirect("networking:detail", pk=network.pk)
        return self._render(request, network, form)

    def _render(self, request, network: VirtualNetwork, form):
        return render(request, "networking/network_edit.html", {"network": network, "form": form},
                      status=400 if form.is_bound else 200)


class NetworkFormPostView(Access, View):
    """A small form on the network's page: valid, it queues `action`; invalid, the page shows why."""

    need, kind = ADMIN, VirtualNetwork
    queryset = VirtualNetwork.objects.select_related("host")
    http_method_names = ["post"]
    form_class: type[forms.NetworkFormBase]
    action: str
    context_name: str | None = None

    def post(self, request, pk: int):
        network = self.object
        form = self.form_class(request.POST, network=network)
        if not form.is_valid():
            view = NetworkDetailView(request=request, kwargs={"pk": pk}, object=network)
            context = view.get_context_data(object=network, **({self.context_name: form} if self.context_name else {}))
            for errors in ([] if self.context_name else form.errors.values()):
                for error in errors:
                    messages.error(request, error)
            return render(request, NetworkDetailView.template_name, context, status=400)
        _enqueue(request, network, self.action, dict(form.cleaned_data))
        return redirect("networking:detail", pk=network.pk)


class LeaseAddView(NetworkFormPostView):
    form_class = forms.StaticLeaseForm
    action = "lease_add"
    context_name = "lease_form"


class LeaseRemoveView(NetworkFormPostView):
    form_class = forms.RemoveStaticLeaseForm
    action = "lease_remove"


class DNSAddView(NetworkFormPostView):
    form_class = forms.DNSHostForm
    action = "dns_add"
    context_name = "dns_form"


class DNSRemoveView(NetworkFormPostView):
    form_class = forms.RemoveDNSHostForm
    action = "dns_remove"
