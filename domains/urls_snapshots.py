"""URLs of the VM snapshots pages (included by domains/urls.py)."""
from django.urls import path

from domains import views_snapshots as views

urlpatterns = [
    path("<int:pk>/snapshots/new/", views.SnapshotCreateView.as_view(), name="snapshot_create"),
    path("<int:pk>/snapshots/revert/", views.SnapshotRevertView.as_view(), name="snapshot_revert"),
    path("<int:pk>/snapshots/delete/", views.SnapshotDeleteView.as_view(), name="snapshot_delete"),
    path("<int:pk>/snapshots/refresh/", views.SnapshotRefreshView.as_view(), name="snapshot_refresh"),
    path("<int:pk>/clone/", views.DomainCloneView.as_view(), name="clone"),
    path("<int:pk>/template/", views.DomainTemplateView.as_view(), name="template"),
]
