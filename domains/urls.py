from django.urls import include, path

from domains import views

app_name = "domains"
urlpatterns = [
    path("", views.DomainListView.as_view(), name="list"),
    path("bulk/", views.DomainBulkActionView.as_view(), name="bulk"),
    path("<int:pk>/", views.DomainDetailView.as_view(), name="detail"),
    path("<int:pk>/rename/", views.DomainRenameView.as_view(), name="rename"),
    path("<int:pk>/delete/", views.DomainDeleteView.as_view(), name="delete"),
    path("", include("domains.urls_create")),
    path("", include("domains.urls_snapshots")),
    path("", include("domains.urls_migration")),
    path("", include("domains.urls_config")),
    # Last: a single-word action name would otherwise shadow the pages above.
    path("<int:pk>/<slug:action>/", views.DomainActionView.as_view(), name="action"),
]
