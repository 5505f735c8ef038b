import re
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views import View
from django.views.generic import DetailView

from accounts.access import OPERATE
from accounts.audit import audit
from accounts.mixins import Access
from accounts.models import AuditAction
from consoles import services
from consoles.selectors import domain_graphics
from consoles.spice import spice_file
from domains.models import Domain


class ConsolePageMixin(Access):
    need, kind = OPERATE, Domain
    context_object_name = "domain"
    queryset = Domain.objects.select_related("host")
    graphics = "vnc"  # the display the page needs; "serial" for the terminal

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        try:
            services.console_check_available(domain=self.object, graphics=self.graphics)
            context["unavailable"] = ""
        except services.ConsoleUnavailable as exc:
            context["unavailable"] = str(exc)  # the page says why instead of connecting
        return context


class VNCConsoleView(ConsolePageMixin, DetailView):
    template_name = "consoles/vnc.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["proxy_url"] = settings.CONSOLE_PROXY_URL
        context["proxy_port"] = settings.CONSOLE_PROXY_PORT
        return context

    def render_to_response(self, context, **response_kwargs):
        response = super().render_to_response(context, **response_kwargs)
        policy = console_page_policy(self.request)
        if policy:  # set here, the site-wide policy middleware leaves it as it is
            response.headers["Content-Security-Policy"] = policy
        return response


def console_page_policy(request) -> str:
    """The site's Content-Security-Policy (if it has one) with the console proxy added to the
    places a page may connect to: the proxy is another origin (another port, or CONSOLE_PROXY_URL)."""
    policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")
    if not policy:
        return ""
    source = console_proxy_origin(request)
    if re.search(r"(^|;)\s*connect-src\b", policy):
        return re.sub(r"((?:^|;)\s*connect-src\b[^;]*)", lambda match: f"{match.group(1)} {source}", policy, count=1)
    return f"{policy.rstrip('; ')}; connect-src 'self' {source}"


def console_proxy_origin(request) -> str:
    """Where the page's websocket to the console proxy goes: CONSOLE_PROXY_URL's origin; the page's
    own origin (as ws/wss) when that URL is a path (the proxy behind the same reverse proxy as the
    pages); else the page's host name on CONSOLE_PROXY_PORT (`make run`)."""
    scheme = "wss" if request.is_secure() else "ws"
    if settings.CONSOLE_PROXY_URL.startswith("/"):
        return f"{scheme}://{request.get_host()}"
    if settings.CONSOLE_PROXY_URL:
        parts = urlsplit(settings.CONSOLE_PROXY_URL)
        return f"{parts.scheme}://{parts.netloc}"
    hostname = urlsplit(f"//{request.get_host()}").hostname or "localhost"
    host = f"[{hostname}]" if ":" in hostname else hostname
    return f"{scheme}://{host}:{settings.CONSOLE_PROXY_PORT}"


class SerialConsoleView(ConsolePageMixin, DetailView):
    template_name = "consoles/serial.html"
    graphics = "serial"


class ConsoleTokenView(Access, View):
    """POST: a one-use token for the VM's VNC console, valid for 30 s (JSON)."""

    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")
    http_method_names = ["post"]

    def post(self, request, pk: int):
        domain = self.object
        try:
            token = services.console_token_issue(user=request.user, domain=domain,
                                                 session_key=request.session.session_key)
        except services.ConsoleForbidden as exc:
            return JsonResponse({"error": str(exc)}, status=403)
        except services.ConsoleUnavailable as exc:
            return JsonResponse({"error": str(exc)}, status=409)
        audit(request, AuditAction.CONSOLE_OPENED, target=f"{domain.name} on {domain.host.name}", detail="VNC")
        response = JsonResponse({"token": token})
        response["Cache-Control"] = "no-store"
        return response


class SpiceFileView(Access, View):
    """A .vv file for remote-viewer, from the VM's cached SPICE endpoint (never a password)."""

    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")

    def get(self, request, pk: int):
        domain = self.object
        try:
            services.console_check_available(domain=domain, graphics="spice")
            body = spice_file(domain, domain_graphics(domain, "spice"))
        except services.ConsoleUnavailable as exc:
            return HttpResponse(str(exc), status=409, content_type="text/plain")
        response = HttpResponse(body, content_type="application/x-virt-viewer")
        response["Content-Disposition"] = f'attachment; filename="{domain.pk}.vv"'
        response["Cache-Control"] = "no-store"
        return response
