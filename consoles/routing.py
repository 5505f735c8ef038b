"""Websocket routes of the consoles (vmsite/routing.py includes them)."""
from django.urls import path

from consoles import consumers

websocket_urlpatterns = [
    path("ws/vms/<int:pk>/serial/", consumers.SerialConsoleConsumer.as_asgi()),
    path("ws/vms/<int:pk>/screenshots/", consumers.ScreenshotConsumer.as_asgi()),
]
