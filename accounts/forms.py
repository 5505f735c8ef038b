from __future__ import annotations

import math

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts.addresses import request_address
from accounts.audit import audit
from accounts.lockout import password_accepted, password_attempt
from accounts.models import AuditAction
from vmsite.outages import ServiceUnavailable


class LockoutAuthenticationForm(AuthenticationForm):
    """Django's login form. Each attempt is counted before the password is checked; a user name or
    address over its limit is refused without the password being checked at all."""

    def clean(self):
        username = (self.data.get("username") or "")[:150]
        if not (self.cleaned_data.get("username") and self.cleaned_data.get("password")):
            return super().clean()  # the field errors say what is missing; no password is checked
        try:
            return self._counted_clean(username, request_address(self.request))
        except ServiceUnavailable as exc:  # nothing can be counted (accounts/lockout.py): refused, unchecked
            raise forms.ValidationError(str(exc), code="unavailable") from exc

    def _counted_clean(self, username: str, address: str | None):
        wait = password_attempt(username, address)
        if wait:
            audit(self.request, AuditAction.LOGIN_LOCKED, username=username, result="refused",
                  detail=f"{wait} s left")
            raise forms.ValidationError(
                f"Too many failed logins. Try again in {math.ceil(wait / 60)} minute(s).", code="locked")
        cleaned = super().clean()  # a wrong password raises here, and stays counted
        password_accepted(username, address)
        return cleaned
