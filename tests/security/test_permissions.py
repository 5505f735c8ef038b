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

from accounts.access import ADMIN, VIEW
from accounts.mixins import Access
from accounts.models import Grant, Role
from backups.models import BackupJob
from domains.models import Domain
from hosts.models import Host
from storage.models import Volume
from tests.security.test_urlconf import all_routes, objects, row_counts  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]  # every route × every role

PUBLIC_VIEWS = {"LoginView", "SecondFactorView", "LogoutView", "FaviconView"}
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
    # A volume's operators: those of its host (and of the VM that owns it: tests/security/test_volumes.py).
    # A backup job's: those of its host (it backs up that host's VMs into its pool).
    return "allowed" if role == "operator" and kind in (Domain, Host, Volume, BackupJob) else "forbidden"


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


# Where Django itself would log people in or change users: its admin, its password views.
OUTSIDE_LOGIN_PATHS = ("/admin/", "/admin/login/", "/admin/auth/user/", "/admin/auth/user/add/",
                       "/admin/password_change/", "/password_change/", "/password_reset/", "/accounts/login/",
                       "/accounts/password_change/", "/accounts/password_reset/")


def test_it_has_one_login_path_and_no_other_way_to_change_users(objects, clients):
    """Row 1 of issue 14: vmsite's login (lockout, second factor, audit) is the only one, and no
    route hands a user, a grant or a password to one of Django's own views."""
    for url in all_routes(objects):
        view = resolve(url).func
        module = getattr(view, "view_class", view).__module__
        assert not module.startswith("django.contrib.admin"), f"{url} is Django's admin"
        if module.startswith("django.contrib.auth"):
            assert view.view_class.__name__ == "LogoutView", f"{url} is Django's {view.view_class.__name__}"
    before = row_counts()
    for role in ROLES:
        for url in OUTSIDE_LOGIN_PATHS:
            assert clients[role].get(url).status_code == 404, f"GET {url} as {role}"
            assert clients[role].post(url, {"username": role, "password": "x", "is_superuser": "on"}
                                      ).status_code == 404, f"POST {url} as {role}"
    assert row_counts() == before


def expected_for_vm_operator(url: str, method: str = "GET") -> str:
    """A user whose only grant is an operator's on the walked VM: that VM, nothing else of its host;
    on it, everything an operator does but what needs the host (new NICs, filters, clones)."""
    need, kind, name = declaration(url, method)
    if need == "public":
        return "allowed"
    if kind is None:
        return "forbidden" if need == ADMIN else "allowed"
    if kind is not Domain:
        return "hidden"
    view = resolve(url).func.view_class
    # host_need: the VM's host too; needs_an_operated_host: some host (a restored VM is made on one they operate).
    if need == ADMIN or getattr(view, "host_need", None) or getattr(view, "needs_an_operated_host", False):
        return "forbidden"
    return "allowed"


def test_a_vm_scoped_operator_reaches_its_vm_and_no_host_level_change(objects):
    user = get_user_model().objects.create_user("vm-operator", password="x")
    Grant.objects.create(user=user, domain=objects["domain"], role=Role.OPERATOR)
    client = Client()
    client.force_login(user)
    before = row_counts()
    checked, refused = set(), set()
    for url in all_routes(objects):
        if declaration(url)[0] == "public":
            continue  # the login pages: tested in tests/accounts
        want, got = expected_for_vm_operator(url), answer(client.get(url))
        if want == "forbidden" and declaration(url)[1] is Domain:
            refused.add(declaration(url)[2])
        if got == "no such method" and want == "allowed":
            got = "allowed"
        assert got == want, f"GET {url} ({declaration(url)[2]}) as a VM-scoped operator: {got}, not {want}"
        if want != "allowed":
            got = answer(client.post(url, {"name": "x", "action": "start", "network": "walked-net", "mac": "",
                                            "model": "virtio", "live": "on", "persistent": "on"}))
            if got != "no such method":
                assert got == expected_for_vm_operator(url, "POST"), f"POST {url} as a VM-scoped operator: {got}"
        checked.add(declaration(url)[2])
    assert {"AttachNicView", "NicFilterView", "VMAttachNic", "VMNicFilter", "NicChangeView", "NicLinkView"} <= checked
    # New NICs and filters are the host's (networks, filters): refused on the VM's own grant, pages and API.
    assert {"AttachNicView", "NicFilterView", "VMAttachNic", "VMNicFilter"} <= refused
    assert not {"NicChangeView", "NicLinkView", "DetachNicView", "VMNicLink", "VMNicChange"} & refused
    # Restoring as a new VM needs a host they operate (none here); in place, attach and detach are the VM's.
    assert {"RestoreView", "VMBackupRestore"} <= refused
    assert not {"RestoreInPlaceView", "AttachDiskView", "DetachDiskView", "VMBackupRestoreInPlace", "VMBackupAttach",
                "VMBackupDetach"} & refused
    assert row_counts() == before
