"""URLs of the backups pages, under a VM's (included by vmsite/urls.py at vms/)."""
from django.urls import path

from backups import views, views_restores

app_name = "backups"
urlpatterns = [
    path("<int:pk>/backups/new/", views.BackupNowView.as_view(), name="backup_now"),
    path("<int:pk>/backups/<int:point_id>/restore/", views.RestoreView.as_view(), name="restore"),
    path("<int:pk>/backups/<int:point_id>/restore-in-place/", views_restores.RestoreInPlaceView.as_view(),
         name="restore_in_place"),
    path("<int:pk>/backups/<int:point_id>/attach/", views_restores.AttachDiskView.as_view(), name="attach_disk"),
    path("<int:pk>/backup-disks/<int:attached_id>/detach/", views_restores.DetachDiskView.as_view(),
         name="detach_disk"),
    path("<int:pk>/backups/<int:point_id>/health-check/", views.HealthCheckView.as_view(), name="health_check"),
]
