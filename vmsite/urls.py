from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from vmsite.views import DashboardView

urlpatterns = [
    path("", DashboardView.as_view(), name="dashboard"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("hosts/", include("hosts.urls")),
    path("vms/", include("domains.urls")),
    path("storage/", include("storage.urls")),
    path("operations/", include("operations.urls")),
    path("admin/", admin.site.urls),
]
