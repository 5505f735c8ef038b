"""The graphs' data as JSON columns; the page draws them (static/vmsite/graphs.js)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views import View

from accounts.mixins import Access

from domains.models import Domain
from hosts.models import Host
from metrics.sampler import RATE_FIELDS, series

RANGES = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24)}
DOMAIN_FIELDS = ("cpu_percent", "memory_kib", *RATE_FIELDS)
HOST_FIELDS = ("cpu_percent", "memory_kib", "vms_cpu_percent", "vms_memory_kib", *RATE_FIELDS)


def _since(request: HttpRequest):
    """?since=<unix seconds> for the points after the last one a page has, else ?range=1h|6h|24h."""
    now = timezone.now()
    window = RANGES.get(request.GET.get("range", "1h"), RANGES["1h"])
    try:
        # Points are sent with millisecond times: the one the page has may be up to 0.5 ms later.
        since = datetime.fromtimestamp(float(request.GET["since"]), UTC) + timedelta(microseconds=500)
    except (KeyError, ValueError, OverflowError, OSError):
        return now - window
    return max(since, now - window)


class DomainSeriesView(Access, View):
    kind = Domain
    http_method_names = ["get"]

    def get(self, request: HttpRequest, pk: int) -> JsonResponse:
        domain = self.object
        return JsonResponse({"interval": settings.GRAPH_SAMPLE_SECONDS, "host": domain.host_id, "series": series(
            host_id=domain.host_id, domain_id=domain.pk, since=_since(request), fields=DOMAIN_FIELDS)})


class HostSeriesView(Access, View):
    kind = Host
    http_method_names = ["get"]

    def get(self, request: HttpRequest, pk: int) -> JsonResponse:
        host = self.object
        return JsonResponse({"interval": settings.GRAPH_SAMPLE_SECONDS, "memory_total_kib": host.memory_kib or 0, "series": series(
            host_id=host.pk, domain_id=None, since=_since(request), fields=HOST_FIELDS)})
