"""Login with an optional second factor, and a user's own account page: second factor on/off,
log out everywhere."""
from __future__ import annotations

import time

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views import View

from accounts.addresses import request_address
from accounts.audit import audit
from accounts.forms import LockoutAuthenticationForm
from accounts.forms_tokens import TokenForm
from accounts.lockout import login_completed, second_factor_attempt
from accounts.mixins import Access
from accounts.models import AuditAction
from accounts.sessions import end_all_sessions
from accounts.totp import device_for, has_second_factor, qr_svg, start_enrolment, verify
from api.tokens import tokens_revoke_all

PENDING_USER = "vmsite_pending_user"
PENDING_BACKEND = "vmsite_pending_backend"
PENDING_SINCE = "vmsite_pending_since"
PENDING_NEXT = "vmsite_pending_next"
PENDING_SECONDS = 300


class CodeForm(forms.Form):
    code = forms.CharField(max_length=10, label="Code from your authenticator app",
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                         "autofocus": True}))


class DisableForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    code = forms.CharField(max_length=10, required=False, label="Code from your authenticator app",
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))


class LoginView(auth_views.LoginView):
    """The password step; users with a second factor then give a code before they are logged in."""

    authentication_form = LockoutAuthenticationForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.has_error("__all__", code="unavailable"):  # the lockout store is down (accounts/lockout.py)
            response.status_code = 503
        return response

    def form_valid(self, form):
        user = form.get_user()
        if not has_second_factor(user):
            return super().form_valid(form)
        session = self.request.session
        session.cycle_key()
        session[PENDING_USER] = user.pk
        session[PENDING_BACKEND] = user.backend
        session[PENDING_SINCE] = time.time()
        session[PENDING_NEXT] = self.get_success_url()
        return redirect("account:second_factor")


@method_decorator(login_not_required, name="dispatch")
class SecondFactorView(View):
    template_name = "accounts/second_factor.html"

    def pending_user(self, request):
        session = request.session
        if time.time() - session.get(PENDING_SINCE, 0) > PENDING_SECONDS:
            return None
        return get_user_model().objects.filter(pk=session.get(PENDING_USER), is_active=True).first()

    def get(self, request):
        if self.pending_user(request) is None:
            return redirect("login")
        return render(request, self.template_name, {"form": CodeForm()})

    def post(self, request):
        user = self.pending_user(request)
        if user is None:
            messages.error(request, "The login took too long: give your password again.")
            return redirect("login")
        form = CodeForm(request.POST)
        if not form.is_valid():
            return render(request, self.template_name, {"form": form}, status=400)  # no code was checked
        username, address = user.get_username(), request_address(request)
        wait = second_factor_attempt(username, address)
        if wait:
            audit(request, AuditAction.LOGIN_LOCKED, user=user, result="refused",
                  detail=f"second factor, {wait} s left")
            form.add_error(None, f"Too many failed logins. Try again in {-(-wait // 60)} minute(s).")
        elif verify(device_for(user), form.cleaned_data["code"]):
            login_completed(username, address)
            next_url = request.session.get(PENDING_NEXT) or settings.LOGIN_REDIRECT_URL
            backend = request.session.get(PENDING_BACKEND)
            login(request, user, backend=backend)  # a new session key; the pending keys go with the old one
            return redirect(next_url)
        else:
            audit(request, AuditAction.TOTP_FAILED, user=user, result="failed")
            form.add_error("code", "That code is wrong or was used already.")
        return render(request, self.template_name, {"form": form}, status=400)


class AccountView(Access, View):
    template_name = "accounts/account.html"

    def get(self, request):
        return self.page(request)

    def page(self, request, *, code_form=None, disable_form=None, token_form=None, new_token: str = "",
             status=200):
        device = device_for(request.user)
        context = {"device": device, "code_form": code_form or CodeForm(), "disable_form": disable_form or DisableForm(),
                   "qr": qr_svg(device) if device and not device.confirmed else "",
                   "required": request.user.is_superuser and settings.REQUIRE_TOTP_FOR_ADMINS,
                   "tokens": request.user.api_tokens.all(), "new_token": new_token,
                   "token_form": token_form or TokenForm(user=request.user)}
        return render(request, self.template_name, context, status=status)


class TOTPStartView(Access, View):
    http_method_names = ["post"]

    def post(self, request):
        start_enrolment(request.user)
        return redirect("account:home")


class TOTPConfirmView(AccountView):
    http_method_names = ["post"]

    def post(self, request):
        device = device_for(request.user)
        form = CodeForm(request.POST)
        if device is None or device.confirmed:
            return redirect("account:home")
        if form.is_valid() and verify(device, form.cleaned_data["code"]):
            audit(request, AuditAction.TOTP_ENABLED, target=request.user.get_username())
            messages.success(request, "Second factor on: the next login asks for a code.")
            return redirect("account:home")
        form.add_error("code", "That code is wrong: check the app's clock and try the next code.")
        return self.page(request, code_form=form, status=400)


class TOTPDisableView(AccountView):
    http_method_names = ["post"]

    def post(self, request):
        device = device_for(request.user)
        form = DisableForm(request.POST)
        if device is None:
            return redirect("account:home")
        if request.user.is_superuser and settings.REQUIRE_TOTP_FOR_ADMINS:
            form.add_error(None, "Administrators must keep a second factor here (REQUIRE_TOTP_FOR_ADMINS).")
        elif not form.is_valid():
            pass
        elif not request.user.check_password(form.cleaned_data["password"]):
            form.add_error("password", "That is not your password.")
        elif device.confirmed and not verify(device, form.cleaned_data["code"]):
            form.add_error("code", "That code is wrong or was used already.")
        else:
            device.delete()
            audit(request, AuditAction.TOTP_DISABLED, target=request.user.get_username())
            messages.warning(request, "Second factor off: logins need only your password.")
            return redirect("account:home")
        return self.page(request, disable_form=form, status=400)


class EndSessionsView(Access, View):
    http_method_names = ["post"]

    def post(self, request):
        user = request.user
        count = end_all_sessions(user)
        audit(request, AuditAction.SESSIONS_ENDED, user=user, target=user.get_username(), detail=f"{count} sessions")
        revoked = tokens_revoke_all(request=request, user=user, reason="logged out everywhere")
        logout(request)
        messages.info(request, f"Logged out everywhere ({count} sessions ended, {revoked} API tokens revoked).")
        return redirect("login")


