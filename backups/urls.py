"""URLs of the backups pages, under a VM's (included by vmsite/urls.py at vms/)."""
from django.urls import path

from backups import views

app_name = "backups"
urlpatterns = [
    path("<int:pk>/backups/new/", views.BackupNowView.as_view(), name="backup_now"),
    path("<int:pk>/backups/<int:point_id>/restore/", views.RestoreView.as_view(), name="restore"),
    path("<int:pk>/backups/<int:point_id>/health-check/", views.HealthCheckView.as_view(), name="health_check"),
]
