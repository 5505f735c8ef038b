"""A user's API tokens, on their account page: make one (shown once), revoke one. The page itself is
`views_account.AccountView`; the form is in `forms_tokens`, so the imports run one way."""
from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.views import View

from accounts.audit import audit
from accounts.forms_tokens import TokenForm
from accounts.mixins import Access
from accounts.models import AuditAction
from accounts.views_account import AccountView
from api.models import ApiToken
from api.tokens import TokenRefused, api_token_issue


class TokenCreateView(AccountView):
    http_method_names = ["post"]

    def post(self, request):
        form = TokenForm(request.POST, user=request.user)
        if form.is_valid():
            try:
                row, token = api_token_issue(user=request.user, name=form.cleaned_data["name"],
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
