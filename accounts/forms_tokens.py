"""The form that names a new API token on the account page."""
from __future__ import annotations

import re

from django import forms

from api.models import ApiToken

TOKEN_NAME_RE = re.compile(r"\A[\w .@+-]{1,64}\Z")
MAX_TOKENS = 20


class TokenForm(forms.Form):
    name = forms.CharField(max_length=64, label="Token name", help_text="What the token is for, e.g. 'backup script'.")
    days = forms.IntegerField(required=False, min_value=1, max_value=3650, label="Expires after (days)",
                              help_text="Empty: it never expires (revoke it here when it is no longer needed).")

    def __init__(self, *args, user=None, **kwargs) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not TOKEN_NAME_RE.match(name):
            raise forms.ValidationError("Use letters, digits, spaces and . @ + - _ only.")
        if ApiToken.objects.filter(user=self.user, name=name).exists():
            raise forms.ValidationError(f"You already have a token called {name!r}.")
        return name

    def clean(self):
        if ApiToken.objects.filter(user=self.user).count() >= MAX_TOKENS:
            raise forms.ValidationError(f"You have {MAX_TOKENS} tokens already: revoke one first.")
        return super().clean()
