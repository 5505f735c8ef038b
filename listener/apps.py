from django.apps import AppConfig


class ListenerConfig(AppConfig):
    name = "listener"
