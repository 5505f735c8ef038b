from __future__ import annotations

import uuid as uuid_module

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator

from accounts.models import Role
from domains.models import Domain
from hosts.models import Host


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()],
                               help_text="Letters, digits and @ . + - _ only.")
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    administrator = forms.BooleanField(required=False, help_text="Administrators may do everything.")

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(f"There is already a user called {username}.")
        return username

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password"):
            user = get_user_model()(username=cleaned.get("username", ""))
            try:
                password_validation.validate_password(cleaned["password"], user)
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned


class UserUpdateForm(forms.Form):
    active = forms.BooleanField(required=False, label="Can log in")
    administrator = forms.BooleanField(required=False)


class PasswordForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                               label="New password")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        password_validation.validate_password(password, self.user)
        return password


class GrantForm(forms.Form):
    host = forms.ModelChoiceField(queryset=Host.objects.order_by("name"), empty_label=None)
    vm = forms.CharField(required=False, max_length=255, label="VM (name or UUID)",
                         help_text="Empty: the whole host, with all its VMs, pools and networks.")
    role = forms.ChoiceField(choices=Role.choices)

    def clean(self):
        cleaned = super().clean()
        host, vm = cleaned.get("host"), cleaned.get("vm", "").strip()
        cleaned["domain"] = None
        if host is not None and vm:
            try:
                lookup = {"uuid": uuid_module.UUID(vm)}
            except ValueError:
                lookup = {"name": vm}
            domain = Domain.objects.filter(host=host, **lookup).first()
            if domain is None:
                self.add_error("vm", f"No VM called {vm!r} on {host.name}.")
            cleaned["domain"] = domain
        return cleaned
