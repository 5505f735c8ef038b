"""URLs of the new-VM wizard (included by domains/urls.py)."""
from django.urls import path

from domains import views_create

urlpatterns = [
    path("new/", views_create.CreateDomainHostView.as_view(), name="create_host"),
    path("new/<int:host_pk>/", views_create.CreateDomainView.as_view(), name="create"),
]
