"""Console pages, under /vms/ (included before domains.urls, whose action route would shadow them)."""
from django.urls import path

from consoles import views

app_name = "consoles"
urlpatterns = [
    path("<int:pk>/console/", views.VNCConsoleView.as_view(), name="vnc"),
    path("<int:pk>/console/token/", views.ConsoleTokenView.as_view(), name="token"),
    path("<int:pk>/serial/", views.SerialConsoleView.as_view(), name="serial"),
    path("<int:pk>/console.vv", views.SpiceFileView.as_view(), name="spice"),
]
