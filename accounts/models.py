from django.conf import settings
from django.db import models

from vmsite import secretbox


class AuditAction(models.TextChoices):
    LOGIN = "login", "Logged in"
    LOGIN_FAILED = "login_failed", "Login failed"
    LOGIN_LOCKED = "login_locked", "Login refused: locked out"
    LOGOUT = "logout", "Logged out"
    HOST_ADDED = "host_added", "Host registered"
    HOST_CHANGED = "host_changed", "Host registration changed"
    HOST_REMOVED = "host_removed", "Host removed"
    HOST_KEY_ACCEPTED = "host_key_accepted", "Host's new SSH key accepted"
    CONSOLE_OPENED = "console_opened", "Console opened"
    TOTP_FAILED = "totp_failed", "Second factor: wrong code"
    TOTP_ENABLED = "totp_enabled", "Second factor turned on"
    TOTP_DISABLED = "totp_disabled", "Second factor turned off"
    SESSIONS_ENDED = "sessions_ended", "Logged out everywhere"
    USER_ADDED = "user_added", "User added"
    USER_CHANGED = "user_changed", "User changed"
    GRANT_ADDED = "grant_added", "Grant added"
    GRANT_REMOVED = "grant_removed", "Grant removed"
    TOKEN_CREATED = "token_created", "API token made"
    TOKEN_REVOKED = "token_revoked", "API token revoked"
    TOKEN_REFUSED = "token_refused", "API token refused"


class AuditEvent(models.Model):
    """Who did what, when, from where, with what result. Written by vmsite only, never edited: no
    page or form changes a row (operations keep their own log, shown beside these)."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150, blank=True)  # as typed (failed logins) or as it was
    address = models.GenericIPAddressField(null=True)
    action = models.CharField(max_length=32, choices=AuditAction.choices, db_index=True)
    target = models.CharField(max_length=255, blank=True)
    result = models.CharField(max_length=16, default="ok")  # ok, refused, failed
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]


class TOTPDevice(models.Model):
    """A user's second factor: an RFC 6238 authenticator app. Confirmed once a code from it was
    accepted; each time step is accepted only once (a code seen by someone else cannot be replayed).
    The shared secret is kept sealed (vmsite/secretbox.py), bound to its user: `secret` opens it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp")
    sealed_secret = models.CharField(max_length=255)
    confirmed = models.BooleanField(default=False)
    last_step = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def secret(self) -> str:
        return secretbox.unseal(self.sealed_secret, context=totp_secret_context(self.user_id))

    @secret.setter
    def secret(self, value: str) -> None:
        self.sealed_secret = secretbox.seal(value, context=totp_secret_context(self.user_id))


def totp_secret_context(user_id: int) -> str:
    """What a second-factor secret is sealed for: a sealed secret moved to another user does not open."""
    return f"accounts.totp-secret:user:{user_id}"


class Role(models.TextChoices):
    OPERATOR = "operator", "Operator: lifecycle, console, change VMs"
    VIEWER = "viewer", "Viewer: read-only"


class Grant(models.Model):
    """A user's role on one host (all its VMs, pools and networks) or on one VM. Administrators
    (superusers) need none: they may do everything."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="grants")
    host = models.ForeignKey("hosts.Host", null=True, blank=True, on_delete=models.CASCADE, related_name="grants")
    domain = models.ForeignKey("domains.Domain", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="grants")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(host__isnull=True) ^ models.Q(domain__isnull=True),
                                   name="grant_on_a_host_or_a_vm"),
            models.UniqueConstraint(fields=["user", "host"], name="one_grant_per_user_and_host"),
            models.UniqueConstraint(fields=["user", "domain"], name="one_grant_per_user_and_vm"),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.role} on {self.host or self.domain}"
