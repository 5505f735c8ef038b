import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts.audit import audit
from accounts.models import AuditAction


class Command(BaseCommand):
    help = (
        "Create the first administrator once. The password comes from VMSITE_ADMIN_PASSWORD, "
        "or is generated and printed."
    )

    def handle(self, *args, **options) -> None:
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            return
        username = os.environ.get("VMSITE_ADMIN_USER", "admin")
        password = os.environ.get("VMSITE_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        users.objects.create_superuser(username=username, email="", password=password)
        audit(None, AuditAction.USER_ADDED, target=username, detail="administrator, by manage.py ensure_admin")
        if "VMSITE_ADMIN_PASSWORD" in os.environ:
            self.stdout.write(f"Created administrator {username!r} with the password from VMSITE_ADMIN_PASSWORD.")
        else:
            self.stdout.write(self.style.WARNING(
                f"Created administrator {username!r} with password {password}\n"
                "It is shown only this once: note it, or change it with "
                f"`.venv/bin/python manage.py user_password {username}`."
            ))
