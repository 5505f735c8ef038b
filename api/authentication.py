"""Token authentication for the API's views (api.tokens.authenticate_token decides)."""
from __future__ import annotations

from rest_framework import authentication, exceptions

from accounts.addresses import request_address
from api.tokens import TokenDenied, authenticate_token, bearer_token


class TokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        token = bearer_token(authentication.get_authorization_header(request).decode("latin-1"))
        if token is None:
            return None  # not a token: the session may still authenticate
        try:
            return authenticate_token(token, request_address(request._request), request._request), None
        except TokenDenied as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="vmsite"'
