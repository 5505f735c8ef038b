from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

from accounts.views_account import LoginView
from vmsite.views import DashboardBusiestView, DashboardView, FaviconView, SystemView

# Redis (or another service) unreachable: 503 saying what is down (vmsite/outages.py).
handler500 = "vmsite.outages.server_error"

urlpatterns = [
    path("", DashboardView.as_view(), name="dashboard"),
    path("dashboard/busiest/", DashboardBusiestView.as_view(), name="dashboard_busiest"),
    path("favicon.ico", login_not_required(FaviconView.as_view()), name="favicon"),
    path("login/", LoginView.as_view(), name="login"),
    path("account/", include("accounts.urls_account")),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("hosts/", include("hosts.urls")),
    path("vms/", include("consoles.urls")),
    path("vms/", include("domains.urls")),
    path("vms/", include("backups.urls")),
    path("backup-jobs/", include("backups.urls_jobs")),
    path("networks/", include("networking.urls")),
    path("storage/", include("storage.urls")),
    path("operations/", include("operations.urls")),
    path("metrics/", include("metrics.urls")),
    path("audit/", include("accounts.urls")),
    path("users/", include("accounts.urls_users")),
    path("system/", SystemView.as_view(), name="system"),
    path("api/v1/", include("api.urls")),
]
