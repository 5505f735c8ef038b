from django.urls import path

from accounts import views_users as views

app_name = "users"
urlpatterns = [
    path("", views.UserListView.as_view(), name="list"),
    path("add/", views.UserCreateView.as_view(), name="add"),
    path("<int:pk>/", views.UserDetailView.as_view(), name="detail"),
    path("<int:pk>/update/", views.UserUpdateView.as_view(), name="update"),
    path("<int:pk>/password/", views.UserPasswordView.as_view(), name="password"),
    path("<int:pk>/grants/add/", views.GrantAddView.as_view(), name="grant_add"),
    path("<int:pk>/grants/<int:grant_pk>/remove/", views.GrantRemoveView.as_view(), name="grant_remove"),
]
