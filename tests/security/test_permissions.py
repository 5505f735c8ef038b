"""The permission matrix: every route × anonymous, a user with no grant, an operator of another host,
a viewer and an operator (grants on the host every id in the routes belongs to) and an
administrator, with the answer each must get. The expected answers come from each view's declaration (`need`, `kind`) through the
rules below, written out separately from accounts/access.py; a route whose view declares nothing
fails the test. Refused roles also POST to every route: nothing in the database may change."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import resolve

from accounts.access import ADMIN, OPERATE, VIEW
from accounts.mixins import Access
from accounts.models import Grant, Role
from domains.models import Domain
from hosts.models import Host
from tests.security.test_urlconf import all_routes, objects, row_counts  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]  # every route × every role

PUBLIC_VIEWS = {"LoginView", "SecondFactorView", "LogoutView"}
# "stranger": an operator, but on another host than the one every id in the routes belongs to.
ROLES = ("anonymous", "nobody", "stranger", "viewer", "operator", "admin")


def make_user(role: str, objects: dict, name: str):
    users = get_user_model()
    user = (users.objects.create_superuser if role == "admin" else users.objects.create_user)(name, password="x")
    if role in ("viewer", "operator"):
        Grant.objects.create(user=user, host=objects["host"], role=Role.VIEWER if role == "viewer" else Role.OPERATOR)
    if role == "stranger":
        elsewhere, _ = Host.objects.get_or_create(name="elsewhere", transport="test", address="default")
        Grant.objects.create(user=user, host=elsewhere, role=Role.OPERATOR)
    return user


@pytest.fixture
def clients(objects):
    made = {"anonymous": Client()}
    for role in ROLES[1:]:
        made[role] = Client()
        made[role].force_login(make_user(role, objects, role))
    return made


def declaration(url: str, method: str = "GET") -> tuple[str, type | None, str]:
    view = resolve(url).func.view_class
    if view.__name__ in PUBLIC_VIEWS:
        return "public", None, view.__name__
    assert issubclass(view, Access) or hasattr(view, "need"), f"{url}: {view.__name__} declares no access (need, kind)"
    need = view.need if isinstance(view.need, str) else view.need.get(method, VIEW)  # API views: per method
    return need, view.kind, view.__name__


def expected(role: str, need: str, kind: type | None) -> str:
    """'login', 'allowed', 'forbidden' (403) or 'hidden' (404)."""
    if need == "public":
        return "allowed"
    if role == "anonymous":
        return "login"
    if role == "admin":
        return "allowed"
    if need == ADMIN:
        return "hidden" if role in ("nobody", "stranger") and kind is not None else "forbidden"
    if kind is None:
        if need == VIEW:
            return "allowed"
        return "allowed" if role in ("operator", "stranger") else "forbidden"
    if role in ("nobody", "stranger"):
        return "hidden"
    if need == VIEW:
        return "allowed"
    return "allowed" if role == "operator" and kind in (Domain, Host) else "forbidden"


def answer(response) -> str:
    if response.status_code == 302 and response["Location"].startswith("/login/"):
        return "login"
    if response.status_code == 401:
        return "login"  # the API's answer to no credentials
    if response.status_code == 405:
        return "no such method"
    if response.status_code == 404 and b"its host" in response.content:
        return "allowed"  # let through, then libvirt said the object is not there (the walked host is a stub)
    if response.status_code == 403:
        return "forbidden"
    if response.status_code == 404:
        return "hidden"
    assert response.status_code < 500, response.status_code
    return "allowed"


@pytest.mark.integration  # reaches a libvirtd or Redis
def test_every_route_answers_each_role_as_declared(objects, clients):
    seen = 0
    for url in all_routes(objects):
        need, kind, name = declaration(url)
        if need == "public":
            continue  # the login pages: for everyone, and tested in tests/accounts
        for role in ROLES:
            got = answer(clients[role].get(url))
            want = expected(role, need, kind)
            if got == "no such method" and want == "allowed":
                got = "allowed"  # a POST-only route, reached
            assert got == want, f"GET {url} ({name}, {need} {kind.__name__ if kind else '-'}) as {role}: {got}, not {want}"
            seen += 1
    assert seen > 150


def test_refused_roles_change_nothing_by_post(objects, clients):
    before = row_counts()
    for url in all_routes(objects):
        need, kind, name = declaration(url, "POST")
        for role in ROLES:
            want = expected(role, need, kind)
            if want == "allowed":
                continue  # allowed POSTs are the features, tested where they are built
            got = answer(clients[role].post(url, {"name": "x", "action": "start", "enabled": "0"}))
            if got == "no such method":
                continue  # a GET-only route: a POST changes nothing there
            assert got == want, f"POST {url} ({name}) as {role}: {got}, not {want}"
    assert row_counts() == before


@pytest.mark.integration  # reaches a libvirtd or Redis
def test_the_api_answers_tokens_as_it_answers_sessions(objects):
    """The same matrix for the API's routes, with tokens instead of sessions, for every method:
    a GET as declared, and a refused POST, PATCH or DELETE changes nothing."""
    from rest_framework.test import APIClient

    from tests.api.conftest import token_client

    clients = {"anonymous": APIClient()}
    for role in ROLES[1:]:
        clients[role] = token_client(make_user(role, objects, f"t-{role}"))
    before = row_counts()
    checked = 0
    for url in (url for url in all_routes(objects) if url.startswith("/api/")):
        for method in ("GET", "POST", "PATCH", "DELETE"):
            need, kind, name = declaration(url, method)
            for role in ROLES:
                want = expected(role, need, kind)
                if want == "allowed" and method != "GET":
                    continue  # allowed changes are the features, tested in tests/api
                got = answer(getattr(clients[role], method.lower())(url, {}, format="json"))
                if got == "no such method":
                    continue
                assert got == want, f"{method} {url} ({name}) with {role}'s token: {got}, not {want}"
                checked += 1
    assert checked > 200
    assert row_counts() == {**before, "api.ApiToken": before["api.ApiToken"]}
