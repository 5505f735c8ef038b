"""Token authentication: `Authorization: Bearer vms_…` (or `Token vms_…`). A wrong token counts as
a failed login from that address, so guessing is locked out like password guessing."""
from __future__ import annotations

from rest_framework import authentication, exceptions

from accounts.audit import audit, client_address
from accounts.lockout import address_locked_for, record_address_failure
from accounts.models import AuditAction
from api.tokens import token_user

KEYWORDS = (b"bearer", b"token")


class TokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Give the token after the keyword, with no spaces in it.")
        address = client_address(request._request)
        if address_locked_for(address):
            raise exceptions.AuthenticationFailed("Too many failed attempts from this address; try again later.")
        try:
            user = token_user(parts[1].decode("ascii"))
        except UnicodeDecodeError:
            user = None
        if user is None:
            record_address_failure(address)
            audit(request._request, AuditAction.TOKEN_REFUSED, result="failed")
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return user, None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="vmsite"'
