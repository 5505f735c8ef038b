from django.urls import path

from domains import views

app_name = "domains"
urlpatterns = [
    path("", views.DomainListView.as_view(), name="list"),
    path("bulk/", views.DomainBulkActionView.as_view(), name="bulk"),
    path("<int:pk>/", views.DomainDetailView.as_view(), name="detail"),
    path("<int:pk>/rename/", views.DomainRenameView.as_view(), name="rename"),
    path("<int:pk>/delete/", views.DomainDeleteView.as_view(), name="delete"),
    path("<int:pk>/<slug:action>/", views.DomainActionView.as_view(), name="action"),
]
