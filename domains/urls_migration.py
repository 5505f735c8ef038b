"""URLs of the VM migration pages (included by domains/urls.py)."""
from django.urls import path

from domains import views_migration as views

urlpatterns = [
    path("<int:pk>/migrate/", views.DomainMigrateView.as_view(), name="migrate"),
]
