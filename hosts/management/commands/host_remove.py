from django.core.management.base import BaseCommand, CommandError

from hosts.models import Host
from hosts.services import host_remove


class Command(BaseCommand):
    help = "Forget a host (its guests are not touched)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")

    def handle(self, *args, **options) -> None:
        host = Host.objects.filter(name=options["name"]).first()
        if host is None:
            raise CommandError(f"No host named {options['name']!r}.")
        host_remove(host=host)
        self.stdout.write(f"Removed host {options['name']}; its guests were not touched.")
