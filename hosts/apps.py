from django.apps import AppConfig
from django.db.models.signals import post_migrate


class HostsConfig(AppConfig):
    name = "hosts"

    def ready(self) -> None:
        post_migrate.connect(_ensure_installation_key, sender=self)


def _ensure_installation_key(**kwargs) -> None:
    """vmsite's own SSH key exists from the first migrate on, so that no page makes it on a GET."""
    from hosts.services import installation_ssh_key

    installation_ssh_key()
