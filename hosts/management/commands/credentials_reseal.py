from django.core.management.base import BaseCommand
from django.db import transaction

from hosts.credentials import credentials_reseal


class Command(BaseCommand):
    help = ("Seal every stored host credential again with the first key of SECRET_BOX_KEY: run it after "
            "putting a new key first, on one node, before dropping the old key everywhere.")

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            count = credentials_reseal()
        self.stdout.write(f"Sealed {count} host credentials again with the first key.")
