"""With REQUIRE_TOTP_FOR_ADMINS, an administrator without a second factor can only set one up."""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from accounts.totp import has_second_factor


class RequireSecondFactorForAdmins:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (settings.REQUIRE_TOTP_FOR_ADMINS and user is not None and user.is_authenticated and user.is_superuser
                and not self._allowed(request.path) and not has_second_factor(user)):
            messages.warning(request, "Administrators need a second factor: set one up to go on.")
            return redirect("account:home")
        return self.get_response(request)

    @staticmethod
    def _allowed(path: str) -> bool:
        return path.startswith((reverse("account:home"), reverse("logout"), settings.STATIC_URL if
                                settings.STATIC_URL.startswith("/") else "/" + settings.STATIC_URL))
