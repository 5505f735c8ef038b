"""Websocket routes (the ASGI router checks Origin and attaches the session user first)."""
from django.urls import path

from consoles.routing import websocket_urlpatterns as console_urlpatterns
from events.consumers import LiveConsumer
from storage.routing import websocket_urlpatterns as storage_websockets

websocket_urlpatterns: list = [
    path("ws/live/", LiveConsumer.as_asgi()),
    *console_urlpatterns,
    *storage_websockets,
]
