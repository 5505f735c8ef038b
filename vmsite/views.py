from django.conf import settings
from django.http import FileResponse, HttpRequest
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import cache_control
from django.views.generic import TemplateView

from accounts.access import ADMIN
from accounts.mixins import Access, LiveFragments
from vmsite.dashboard import busiest_vms, dashboard_figures
from vmsite.doctor import OK, Probe, run_checks


class DashboardView(Access, LiveFragments, TemplateView):
    """The page an admin keeps open: capacity per host, VMs by state, what needs attention, the
    busiest VMs now and recent operations; all of it only over what the user may see."""

    template_name = "dashboard.html"
    fragments = {"dashboard-live": "_dashboard_live.html"}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(dashboard_figures(self.request.user))
        context["refresh_seconds"] = settings.DASHBOARD_REFRESH_SECONDS
        return context


class DashboardBusiestView(Access, TemplateView):
    """The busiest-VMs part alone: the dashboard fetches it every few seconds."""

    template_name = "dashboard_busiest.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(busiest_vms(self.request.user))
        context["refresh_seconds"] = settings.DASHBOARD_REFRESH_SECONDS
        return context


class SystemView(Access, TemplateView):
    """Administrators' self-check of the installation: `manage.py doctor`'s checks, for the URL this
    page was reached at."""

    need = ADMIN
    template_name = "system.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        site_url = self.request.build_absolute_uri("/").rstrip("/")
        results = run_checks(Probe(site_url=site_url))
        context.update(site_url=site_url, results=results, problems=sum(result.level != OK for result in results))
        return context


@method_decorator(cache_control(public=True, max_age=7 * 24 * 3600), name="get")
class FaviconView(View):
    """Browsers and tools ask for /favicon.ico whatever the page says: the same icon as the pages'."""

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest) -> FileResponse:
        return FileResponse(open(settings.BASE_DIR / "static" / "vmsite" / "favicon.ico", "rb"),
                            content_type="image/x-icon")
