"""Websocket routes. The live event consumers join here as they are built (see DESIGN.md)."""
websocket_urlpatterns: list = []
