"""Websocket routes (the ASGI router checks Origin and attaches the session user first)."""
from django.urls import path

from events.consumers import LiveConsumer

websocket_urlpatterns: list = [
    path("ws/live/", LiveConsumer.as_asgi()),
]
