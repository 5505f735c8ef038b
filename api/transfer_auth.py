"""API tokens where the API's views do not reach: the websockets (uploads, the live socket) and the
streamed volume download. Scripts send `Authorization: Bearer vms_…` there as on the API. A wrong
token counts as a failed login from the address, as on the API; consoles still need a browser
session (they are bound to it)."""
from __future__ import annotations

from collections.abc import Callable

from channels.db import database_sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from accounts.addresses import request_address, scope_address
from api.tokens import TokenDenied, authenticate_token, bearer_token

# Page routes a token may GET (they stream what the API cannot: a JSON API has no place for bytes).
TOKEN_ROUTES = {"storage:volume_download"}


class TokenForTransfers:
    """Django middleware (after AuthenticationMiddleware): a GET with a token on TOKEN_ROUTES acts as
    the token's user; anywhere else a token is not looked at."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = bearer_token(request.headers.get("Authorization", ""))
        if token and request.method == "GET" and self._route(request) in TOKEN_ROUTES:
            try:
                user = authenticate_token(token, request_address(request), request)
            except TokenDenied as exc:
                return JsonResponse({"detail": str(exc)}, status=401,
                                    headers={"WWW-Authenticate": 'Bearer realm="vmsite"'})
            request.user = user

            async def auser():  # what async views (the download) ask
                return user

            request.auser = auser
        return self.get_response(request)

    @staticmethod
    def _route(request: HttpRequest) -> str:
        try:
            return resolve(request.path_info).view_name
        except Resolver404:
            return ""


class TokenSocketAuth:
    """Channels middleware (inside AuthMiddlewareStack): a socket without a session user but with a
    token acts as the token's user."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            headers = dict(scope.get("headers") or [])
            token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
            if token:
                try:
                    scope = {**scope, "user": await database_sync_to_async(authenticate_token)(token,
                                                                                              scope_address(scope))}
                except TokenDenied:
                    pass  # left anonymous: the consumer refuses the handshake
        return await self.inner(scope, receive, send)
