from django.urls import path

from metrics import views

app_name = "metrics"
urlpatterns = [
    path("vm/<int:pk>.json", views.DomainSeriesView.as_view(), name="domain_series"),
    path("host/<int:pk>.json", views.HostSeriesView.as_view(), name="host_series"),
]
