"""Setting a user's password from the shell, through the same audited service as the Users page
(their sessions end, their API tokens are revoked). Django's own `changepassword` would do none of
that: use this one."""
import getpass
import os

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.services import user_set_password

VARIABLE = "VMSITE_NEW_PASSWORD"


class Command(BaseCommand):
    help = (f"Set a user's password (asked twice, or read from {VARIABLE}); audited, ends their sessions "
            "and revokes their API tokens.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")

    def handle(self, *args, username: str, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        password = os.environ.get(VARIABLE) or self._ask()
        try:
            password_validation.validate_password(password, user)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        user_set_password(request=None, user=user, password=password, reason="password set with manage.py")
        self.stdout.write(f"New password set for {username}; their sessions ended and their API tokens were revoked.")

    @staticmethod
    def _ask() -> str:
        first = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != first:
            raise CommandError("The two passwords differ.")
        return first
