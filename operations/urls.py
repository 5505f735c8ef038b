from django.urls import path

from operations import views

app_name = "operations"
urlpatterns = [
    path("", views.OperationListView.as_view(), name="list"),
    path("<int:pk>/", views.OperationDetailView.as_view(), name="detail"),
    path("<int:pk>/status/", views.OperationStatusView.as_view(), name="status"),
    path("<int:pk>/cancel/", views.OperationCancelView.as_view(), name="cancel"),
]
