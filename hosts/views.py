from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.shortcuts import get_object_or_404, redirect
from django.views import View
from django.views.generic import DetailView, ListView

from hosts import selectors, services
from hosts.models import Host
from operations.models import Operation


class HostListView(ListView):
    template_name = "hosts/host_list.html"
    context_object_name = "hosts"

    def get_queryset(self):
        return selectors.host_list()


class HostDetailView(DetailView):
    template_name = "hosts/host_detail.html"
    context_object_name = "host"

    def get_queryset(self):
        return selectors.host_list()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["domains"] = self.object.domains.all()
        context["operations"] = Operation.objects.filter(host=self.object).select_related("user")[:10]
        return context


class HostSyncView(PermissionRequiredMixin, View):
    permission_required = "hosts.change_host"
    http_method_names = ["post"]

    def post(self, request, pk: int):
        host = get_object_or_404(Host, pk=pk)
        operation = services.host_sync_enqueue(host=host, user=request.user)
        messages.info(request, f"Sync of {host} queued as operation #{operation.pk}.")
        return redirect("hosts:detail", pk=host.pk)
