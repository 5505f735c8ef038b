from django.urls import path

from hosts import views

app_name = "hosts"
urlpatterns = [
    path("", views.HostListView.as_view(), name="list"),
    path("add/", views.HostCreateView.as_view(), name="add"),
    path("<int:pk>/", views.HostDetailView.as_view(), name="detail"),
    path("<int:pk>/edit/", views.HostUpdateView.as_view(), name="edit"),
    path("<int:pk>/remove/", views.HostRemoveView.as_view(), name="remove"),
    path("<int:pk>/enable/", views.HostEnableView.as_view(), name="enable"),
    path("<int:pk>/accept-host-key/", views.HostAcceptKeyView.as_view(), name="accept_host_key"),
    path("<int:pk>/sync/", views.HostSyncView.as_view(), name="sync"),
]
