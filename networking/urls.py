from django.urls import path

from networking import views

app_name = "networking"
urlpatterns = [
    path("", views.NetworkListView.as_view(), name="list"),
    path("add/", views.NetworkCreateView.as_view(), name="add"),
    path("<int:pk>/", views.NetworkDetailView.as_view(), name="detail"),
    path("<int:pk>/delete/", views.NetworkDeleteView.as_view(), name="delete"),
    path("<int:pk>/leases/add/", views.LeaseAddView.as_view(), name="lease_add"),
    path("<int:pk>/leases/remove/", views.LeaseRemoveView.as_view(), name="lease_remove"),
    path("<int:pk>/dns/add/", views.DNSAddView.as_view(), name="dns_add"),
    path("<int:pk>/dns/remove/", views.DNSRemoveView.as_view(), name="dns_remove"),
    path("<int:pk>/<slug:action>/", views.NetworkActionView.as_view(), name="action"),
]
