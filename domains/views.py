from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View
from django.views.generic import DetailView, ListView

from domains import selectors, services
from domains.actions import ACTIONS, BULK_ACTIONS, available_actions
from domains.choices import DomainState
from domains.forms import BulkActionForm, DeleteForm, RenameForm
from domains.models import Domain
from hosts.models import Host
from networking.selectors import domain_nics
from operations.models import Operation

PAGE_SIZE = 100


class DomainListView(ListView):
    template_name = "domains/domain_list.html"
    context_object_name = "domains"
    paginate_by = PAGE_SIZE

    def get_queryset(self):
        return selectors.domain_list(
            search=self.request.GET.get("q", "").strip(),
            host_id=_int_or_none(self.request.GET.get("host")),
            state=_int_or_none(self.request.GET.get("state")),
            sort=self.request.GET.get("sort", "name"),
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["hosts"] = Host.objects.only("pk", "name")
        context["states"] = DomainState.choices
        context["bulk_actions"] = BULK_ACTIONS
        query = self.request.GET.copy()
        query.pop("page", None)
        context["query_string"] = query.urlencode()
        query.pop("sort", None)
        context["filter_string"] = query.urlencode()
        context["sort"] = self.request.GET.get("sort", "name")
        return context


class DomainDetailView(DetailView):
    template_name = "domains/domain_detail.html"
    context_object_name = "domain"
    queryset = Domain.objects.select_related("host")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["actions"] = available_actions(self.object)
        context["operations"] = Operation.objects.filter(target_type="domain", target_id=self.object.pk
                                                         ).select_related("user")[:10]
        context["busy"] = services.domain_busy_with(self.object)
        context["nics"] = domain_nics(self.object)
        return context


class DomainActionView(PermissionRequiredMixin, View):
    permission_required = "domains.change_domain"
    http_method_names = ["post"]

    def post(self, request, pk: int, action: str):
        if action not in ACTIONS:
            raise Http404("No such action")
        domain = get_object_or_404(Domain.objects.select_related("host"), pk=pk)
        _enqueue(request, domain, action)
        return redirect("domains:detail", pk=domain.pk)


class DomainRenameView(PermissionRequiredMixin, View):
    permission_required = "domains.change_domain"

    def get(self, request, pk: int):
        domain = get_object_or_404(Domain.objects.select_related("host"), pk=pk)
        return _render_form(request, "domains/domain_rename.html", domain, RenameForm(domain=domain))

    def post(self, request, pk: int):
        domain = get_object_or_404(Domain.objects.select_related("host"), pk=pk)
        form = RenameForm(request.POST, domain=domain)
        if not form.is_valid():
            return _render_form(request, "domains/domain_rename.html", domain, form)
        _enqueue(request, domain, "rename", {"name": form.cleaned_data["name"]})
        return redirect("domains:detail", pk=domain.pk)


class DomainDeleteView(PermissionRequiredMixin, View):
    permission_required = "domains.delete_domain"

    def get(self, request, pk: int):
        domain = get_object_or_404(Domain.objects.select_related("host"), pk=pk)
        return _render_form(request, "domains/domain_delete.html", domain, DeleteForm(domain=domain))

    def post(self, request, pk: int):
        domain = get_object_or_404(Domain.objects.select_related("host"), pk=pk)
        form = DeleteForm(request.POST, domain=domain)
        if not form.is_valid():
            return _render_form(request, "domains/domain_delete.html", domain, form)
        if _enqueue(request, domain, "delete", {"with_volumes": form.cleaned_data["with_volumes"]}):
            return redirect("domains:detail", pk=domain.pk)
        return _render_form(request, "domains/domain_delete.html", domain, form)


class DomainBulkActionView(PermissionRequiredMixin, View):
    permission_required = "domains.change_domain"
    http_method_names = ["post"]

    def post(self, request):
        form = BulkActionForm(request.POST)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return redirect(request.POST.get("next") or "domains:list")
        queued, skipped = services.domain_bulk_enqueue(domains=list(form.cleaned_data["domains"]),
                                                       action=form.cleaned_data["action"], user=request.user)
        label = ACTIONS[form.cleaned_data["action"]].label
        if queued:
            messages.info(request, f"{label}: {len(queued)} operation(s) queued.")
        for reason in skipped:
            messages.warning(request, f"Skipped {reason}")
        return redirect(_safe_next(request) or "domains:list")


def _enqueue(request, domain: Domain, action: str, arguments: dict | None = None) -> bool:
    try:
        operation = services.domain_action_enqueue(domain=domain, action=action, user=request.user,
                                                   arguments=arguments)
    except services.DomainBusy as exc:
        messages.error(request, f"{domain.name} is {exc}")
        return False
    except services.ActionNotAllowed as exc:
        messages.error(request, str(exc))
        return False
    messages.info(request, f"{domain.name}: operation #{operation.pk} ({action.replace('_', ' ')}) queued.")
    return True


def _render_form(request, template: str, domain: Domain, form):
    return render(request, template, {"domain": domain, "form": form}, status=400 if form.is_bound else 200)


def _safe_next(request) -> str | None:
    target = request.POST.get("next", "")
    return target if target.startswith("/vms/") and "//" not in target else None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
