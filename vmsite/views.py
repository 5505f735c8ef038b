from django.conf import settings
from django.db.models import Count
from django.http import FileResponse, HttpRequest
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import cache_control
from django.views.generic import TemplateView

from accounts.access import domains_for, hosts_for, operations_for
from accounts.mixins import Access
from domains.choices import DOMAIN_STATE_COLOURS, DomainState
from hosts.selectors import host_list, mark_watched


class DashboardView(Access, TemplateView):
    """What the user may see: hosts, VM counts by state, recent operations."""

    template_name = "dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        counts = dict(domains_for(user).values_list("state").annotate(n=Count("id")).order_by())
        context["hosts"] = mark_watched(list(host_list().filter(pk__in=hosts_for(user).values("pk"))))
        context["state_counts"] = [
            (DomainState(state).label, DOMAIN_STATE_COLOURS[state], counts[state]) for state in sorted(counts)
        ]
        context["domain_total"] = sum(counts.values())
        context["operations"] = operations_for(user).select_related("user")[:10]
        return context


@method_decorator(cache_control(public=True, max_age=7 * 24 * 3600), name="get")
class FaviconView(View):
    """Browsers and tools ask for /favicon.ico whatever the page says: the same icon as the pages'."""

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest) -> FileResponse:
        return FileResponse(open(settings.BASE_DIR / "static" / "vmsite" / "favicon.ico", "rb"),
                            content_type="image/x-icon")
