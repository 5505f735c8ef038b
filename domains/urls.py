from django.urls import path

from domains import views

app_name = "domains"
urlpatterns = [
    path("", views.DomainListView.as_view(), name="list"),
    path("<int:pk>/", views.DomainDetailView.as_view(), name="detail"),
]
