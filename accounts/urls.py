from django.urls import path

from accounts import views_audit as views

app_name = "accounts"
urlpatterns = [
    path("", views.AuditListView.as_view(), name="audit"),
    path("export.csv", views.AuditExportView.as_view(), name="audit_export"),
]
