from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views import View
from django.views.generic import DetailView, ListView

from accounts.access import OPERATE, domains_for, may, may_rewire_nics, operable_ids, operations_for
from accounts.mixins import Access, LiveFragments
from operations.selectors import status_banners

from domains import selectors, services
from domains.actions import ACTIONS, BULK_ACTIONS, available_actions
from domains.choices import DomainState
from domains.forms import BulkActionForm, DeleteForm, RenameForm
from domains.models import Domain
from storage.selectors import delete_with_vm_plan
from hosts.models import Host
from networking.selectors import domain_nics
from operations.services import operation_busy_with

PAGE_SIZE = 100


class DomainListView(Access, LiveFragments, ListView):
    template_name = "domains/domain_list.html"
    fragments = {"domain-list-live": "domains/_domain_list_live.html"}
    context_object_name = "domains"
    paginate_by = PAGE_SIZE

    def get_queryset(self):
        return selectors.domain_list(
            search=self.request.GET.get("q", "").strip(),
            host_id=_int_or_none(self.request.GET.get("host")),
            state=_int_or_none(self.request.GET.get("state")),
            sort=self.request.GET.get("sort", "name"),
        ).filter(pk__in=domains_for(self.request.user).values("pk"))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["hosts"] = Host.objects.filter(domains__in=domains_for(self.request.user)).distinct().only("pk", "name")
        context["states"] = DomainState.choices
        context["bulk_actions"] = BULK_ACTIONS
        query = self.request.GET.copy()
        query.pop("page", None)
        context["query_string"] = query.urlencode()
        query.pop("sort", None)
        context["filter_string"] = query.urlencode()
        context["sort"] = self.request.GET.get("sort", "name")
        context["operable"] = operable_ids(self.request.user, context["domains"])
        return context


class DomainDetailView(Access, LiveFragments, DetailView):
    kind = Domain
    template_name = "domains/domain_detail.html"
    fragments = {"domain-live": "domains/_domain_live.html", "domain-page": "domains/_domain_page.html"}
    context_object_name = "domain"
    queryset = Domain.objects.select_related("host")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["actions"] = available_actions(self.object)
        context["operations"] = operations_for(self.request.user).filter(
            target_type="domain", target_id=self.object.pk).select_related("user")[:10]
        context["banners"], context["folded_banners"] = status_banners(context["operations"])
        context["can_operate"] = may(self.request.user, OPERATE, self.object)
        context["can_rewire_nics"] = may_rewire_nics(self.request.user, self.object)
        context["busy"] = operation_busy_with(self.object)
        context["nics"] = domain_nics(self.object)
        return context


class DomainActionView(Access, View):
    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")
    http_method_names = ["post"]

    def post(self, request, pk: int, action: str):
        if action not in ACTIONS:
            raise Http404("No such action")
        domain = self.object
        _enqueue(request, domain, action)
        return redirect("domains:detail", pk=domain.pk)


class DomainRenameView(Access, View):
    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")

    def get(self, request, pk: int):
        domain = self.object
        return _render_form(request, "domains/domain_rename.html", domain, RenameForm(domain=domain))

    def post(self, request, pk: int):
        domain = self.object
        form = RenameForm(request.POST, domain=domain)
        if not form.is_valid():
            return _render_form(request, "domains/domain_rename.html", domain, form)
        _enqueue(request, domain, "rename", {"name": form.cleaned_data["name"]})
        return redirect("domains:detail", pk=domain.pk)


class DomainDeleteView(Access, View):
    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")

    def get(self, request, pk: int):
        domain = self.object
        return _render_form(request, "domains/domain_delete.html", domain, DeleteForm(domain=domain))

    def post(self, request, pk: int):
        domain = self.object
        form = DeleteForm(request.POST, domain=domain)
        if not form.is_valid():
            return _render_form(request, "domains/domain_delete.html", domain, form)
        if _enqueue(request, domain, "delete", {"with_volumes": form.cleaned_data["with_volumes"]}):
            return redirect("domains:detail", pk=domain.pk)
        return _render_form(request, "domains/domain_delete.html", domain, form)


class DomainBulkActionView(Access, View):
    need = OPERATE
    http_method_names = ["post"]

    def post(self, request):
        form = BulkActionForm(request.POST, user=request.user)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return redirect(_safe_next(request) or "domains:list")
        chosen = form.cleaned_data["domains"]  # only VMs the user may see
        allowed = list(chosen.filter(pk__in=domains_for(request.user, OPERATE).values("pk")))
        queued, skipped = services.domain_bulk_enqueue(domains=allowed, action=form.cleaned_data["action"],
                                                       user=request.user)
        skipped += [f"{domain.name}: your role does not allow it" for domain in chosen if domain not in allowed]
        label = ACTIONS[form.cleaned_data["action"]].label
        if queued:
            messages.info(request, f"{label}: {len(queued)} operation(s) queued.")
        for reason in skipped:
            messages.warning(request, f"Skipped {reason}")
        if hidden := form.unseen_count():  # never named, and unknown ids counted alike
            messages.warning(request, f"Skipped {hidden} VM(s) that do not exist or that you may not see.")
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
    context = {"domain": domain, "form": form}
    if template == "domains/domain_delete.html":
        context["disk_plan"] = delete_with_vm_plan(domain)
    return render(request, template, context, status=400 if form.is_bound else 200)


def _safe_next(request) -> str | None:
    """The VM page to go back to; never another site, a backslash some browsers read as '/', or a
    control character, which cannot go into a Location header."""
    target = request.POST.get("next", "")
    if target.startswith("/vms/") and "//" not in target and "\\" not in target and target.isprintable():
        return target
    return None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
