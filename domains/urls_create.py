"""URLs of the new-VM wizard (included by domains/urls.py)."""
from django.urls import path

from domains import views_create

urlpatterns = [
    path("new/", views_create.CreateDomainHostView.as_view(), name="create_host"),
    path("new/<int:host_pk>/", views_create.CreateDomainView.as_view(), name="create"),
    path("new/<int:host_pk>/default-<str:what>/", views_create.CreateDomainDefaultView.as_view(),
         name="create_default"),
    path("new/<int:host_pk>/choices/", views_create.CreateDomainChoicesView.as_view(), name="create_choices"),
]
