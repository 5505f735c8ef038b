"""Logins, failed logins and logouts go to the audit log."""
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from accounts.audit import audit
from accounts.models import AuditAction


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs) -> None:
    audit(request, AuditAction.LOGIN, user=user)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    audit(request, AuditAction.LOGIN_FAILED, username=str(credentials.get("username", "")), result="failed")


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit(request, AuditAction.LOGOUT, user=user)
