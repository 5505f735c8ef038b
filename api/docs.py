"""The OpenAPI schema and its Swagger UI (served from drf-spectacular-sidecar, no CDN; the split
view keeps its script out of the page, as the Content-Security-Policy asks). Any logged-in user
or token may read them."""
from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from api.base import ApiAccess


class Schema(ApiAccess, SpectacularAPIView):
    pass


class Docs(ApiAccess, SpectacularSwaggerSplitView):
    template_name = "api/docs.html"  # Swagger UI under a bar that leads back to the site
