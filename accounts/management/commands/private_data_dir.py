from django.conf import settings
from django.core.management.base import BaseCommand

from vmsite.private import make_private


class Command(BaseCommand):
    help = "Create the data folder 0700, or take every other user's rights off it and everything in it."
    requires_system_checks: list[str] = []  # it mends what the data folder check refuses

    def handle(self, *args, **options) -> None:
        changed = make_private(settings.DATA_DIR)
        if changed:
            self.stdout.write(f"Made {changed} paths in {settings.DATA_DIR} private to this user.")
