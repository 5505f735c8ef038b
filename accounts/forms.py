from __future__ import annotations

import math

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts.audit import audit, client_address
from accounts.lockout import locked_for, record_failure, record_success
from accounts.models import AuditAction


class LockoutAuthenticationForm(AuthenticationForm):
    """Django's login form, refusing at once a user name or address with too many recent failures."""

    def clean(self):
        username = (self.data.get("username") or "")[:150]
        address = client_address(self.request)
        wait = locked_for(username, address)
        if wait:
            audit(self.request, AuditAction.LOGIN_LOCKED, username=username, result="refused",
                  detail=f"{wait} s left")
            raise forms.ValidationError(
                f"Too many failed logins. Try again in {math.ceil(wait / 60)} minute(s).", code="locked")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            record_failure(username, address)
            raise
        record_success(username)
        return cleaned
