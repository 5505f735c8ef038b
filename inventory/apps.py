from django.apps import AppConfig


class InventoryConfig(AppConfig):
    """No models: an app so that its operation handlers and its periodic task are found."""

    name = "inventory"
