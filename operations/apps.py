from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "operations"

    def ready(self) -> None:
        # Handlers register themselves by kind when their app's module is imported.
        from operations import registry

        registry.import_handlers()
