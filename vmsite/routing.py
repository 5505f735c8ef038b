"""Websocket routes. The live event consumers join here as they are built (see DESIGN.md)."""
from storage.routing import websocket_urlpatterns as storage_websockets

websocket_urlpatterns: list = [*storage_websockets]
