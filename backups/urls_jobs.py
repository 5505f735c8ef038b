"""URLs of the backup jobs' pages (included by vmsite/urls.py at backup-jobs/)."""
from django.urls import path

from backups import views_jobs

app_name = "backup_jobs"
urlpatterns = [
    path("", views_jobs.JobListView.as_view(), name="list"),
    path("new/", views_jobs.JobCreateView.as_view(), name="create"),
    path("<int:pk>/", views_jobs.JobEditView.as_view(), name="edit"),
    path("<int:pk>/delete/", views_jobs.JobDeleteView.as_view(), name="delete"),
    path("<int:pk>/run/", views_jobs.JobRunView.as_view(), name="run"),
]
