from django.urls import path

from networking import views, views_interfaces

app_name = "networking"
urlpatterns = [
    path("", views.NetworkListView.as_view(), name="list"),
    path("add/", views.NetworkCreateView.as_view(), name="add"),
    path("interfaces/", views_interfaces.InterfaceListView.as_view(), name="interfaces"),
    path("interfaces/add/", views_interfaces.InterfaceCreateView.as_view(), name="interface_add"),
    path("interfaces/<int:pk>/delete/", views_interfaces.InterfaceDeleteView.as_view(), name="interface_delete"),
    path("hosts/<int:pk>/refresh/", views_interfaces.DevicesRefreshView.as_view(), name="devices_refresh"),
    path("filters/", views_interfaces.FilterListView.as_view(), name="filters"),
    path("filters/add/", views_interfaces.FilterCreateView.as_view(), name="filter_add"),
    path("filters/<int:pk>/", views_interfaces.FilterDetailView.as_view(), name="filter_detail"),
    path("filters/<int:pk>/delete/", views_interfaces.FilterDeleteView.as_view(), name="filter_delete"),
    path("<int:pk>/", views.NetworkDetailView.as_view(), name="detail"),
    path("<int:pk>/edit/", views.NetworkEditView.as_view(), name="edit"),
    path("<int:pk>/delete/", views.NetworkDeleteView.as_view(), name="delete"),
    path("<int:pk>/leases/add/", views.LeaseAddView.as_view(), name="lease_add"),
    path("<int:pk>/leases/remove/", views.LeaseRemoveView.as_view(), name="lease_remove"),
    path("<int:pk>/dns/add/", views.DNSAddView.as_view(), name="dns_add"),
    path("<int:pk>/dns/remove/", views.DNSRemoveView.as_view(), name="dns_remove"),
    path("<int:pk>/<slug:action>/", views.NetworkActionView.as_view(), name="action"),
]
