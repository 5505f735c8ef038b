"""A user's API tokens, on their account page: make one (shown once), revoke one."""
from __future__ import annotations

import re

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.views import View

from accounts.audit import audit
from accounts.mixins import Access
from accounts.models import AuditAction
from accounts.views_account import AccountView
from api.models import ApiToken
from api.tokens import TokenRefused, token_issue

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


class TokenCreateView(AccountView):
    http_method_names = ["post"]

    def post(self, request):
        form = TokenForm(request.POST, user=request.user)
        if form.is_valid():
            try:
                row, token = token_issue(user=request.user, name=form.cleaned_data["name"],
                                         days=form.cleaned_data["days"])
            except TokenRefused as exc:
                form.add_error(None, str(exc))
            else:
                audit(request, AuditAction.TOKEN_CREATED, target=str(row))
                response = self.page(request, new_token=token)
                response["Cache-Control"] = "no-store"  # the token is in this page, once
                return response
        return self.page(request, token_form=form, status=400)


class TokenRevokeView(Access, View):
    http_method_names = ["post"]

    def post(self, request, pk: int):
        row = get_object_or_404(ApiToken, pk=pk, user=request.user)
        row.delete()
        audit(request, AuditAction.TOKEN_REVOKED, target=str(row))
        messages.info(request, f"Token {row} revoked.")
        return redirect("account:home")
