"""Logins at the edges (issue 14, rows 4 and 5): the client's address comes from a proxy header
only when the peer is a trusted proxy, attempts are counted before they are checked, a valid API
token is never refused for failed passwords, and wrong second-factor codes have a count of their
own that only a complete login resets.

Every test uses its own user names and addresses, so tests running side by side never share a
count."""
from __future__ import annotations

import http.client
import ipaddress
import re
import secrets
import shlex
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pyotp
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from accounts.addresses import client_address, scope_address
from accounts.audit import audit
from accounts.lockout import ADDRESS_LIMIT, SECOND_FACTOR_LIMIT, USER_LIMIT
from accounts.models import AuditAction, AuditEvent, TOTPDevice
from api.tokens import api_token_issue
from tests import stack

PASSWORD = "a long enough password"
TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.0.2.1")]


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def unique_address() -> str:
    """An address of the benchmarking range no other test uses."""
    return str(ipaddress.ip_address("198.18.0.0") + secrets.randbelow(1 << 17))


@pytest.mark.parametrize(("peer", "forwarded_for", "expected"), [
    ("203.0.113.5", None, "203.0.113.5"),
    ("203.0.113.5", "198.51.100.1", "203.0.113.5"),  # not a trusted proxy: its header is ignored
    ("10.1.2.3", "198.51.100.1", "198.51.100.1"),
    ("10.1.2.3", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # what the client wrote itself is not read
    ("10.1.2.3", "6.6.6.6, 198.51.100.1, 10.9.9.9", "198.51.100.1"),  # a chain of trusted proxies
    ("192.0.2.1", "10.0.0.1, 10.0.0.2", "10.0.0.1"),  # trusted all the way: the first hop
    ("10.1.2.3", "not-an-ip", "10.1.2.3"),  # a malformed entry never becomes the address
    ("10.1.2.3", "6.6.6.6, <script>", "10.1.2.3"),
    ("10.1.2.3", "", "10.1.2.3"),
    ("10.1.2.3", "[2001:db8::7]", "2001:db8::7"),
    ("::ffff:203.0.113.5", None, "203.0.113.5"),
    ("not-an-ip", "198.51.100.1", None),
    (None, "198.51.100.1", None),
])
def test_it_believes_x_forwarded_for_only_from_a_trusted_proxy(peer, forwarded_for, expected):
    assert client_address(peer, forwarded_for, TRUSTED) == expected


def test_it_believes_no_proxy_by_default(settings):
    assert settings.TRUSTED_PROXIES == []
    assert client_address("127.0.0.1", "198.51.100.1") == "127.0.0.1"


def test_it_decides_a_sockets_address_the_same_way(settings):
    settings.TRUSTED_PROXIES = TRUSTED
    headers = [(b"host", b"x"), (b"x-forwarded-for", b"6.6.6.6"), (b"X-Forwarded-For", b"198.51.100.1")]
    assert scope_address({"client": ["10.1.2.3", 5000], "headers": headers}) == "198.51.100.1"
    assert scope_address({"client": ["203.0.113.5", 5000], "headers": headers}) == "203.0.113.5"
    assert scope_address({"client": None, "headers": headers}) is None


@pytest.mark.django_db
def test_it_records_no_address_for_a_value_that_is_not_one():
    event = audit(None, AuditAction.LOGIN_FAILED, username="x", address="1.2.3.4, not-an-ip", result="failed")
    event.refresh_from_db()
    assert event.address is None


# ---- counting before checking ------------------------------------------------------------------

@pytest.mark.usefixtures("redis_ready")  # login failures are counted in Redis
def test_it_checks_at_most_the_limits_worth_of_passwords_sent_side_by_side(transactional_db):
    name, address = unique("target"), unique_address()
    get_user_model().objects.create_user(name, password=PASSWORD)
    attempts = 50
    start = threading.Barrier(attempts)
    answers: list[int] = []

    def wrong_password() -> None:
        try:
            start.wait(timeout=60)
            response = Client().post("/login/", {"username": name, "password": "wrong"}, REMOTE_ADDR=address)
            answers.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrong_password) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert answers == [200] * attempts  # every one refused, none logged in
    checked = AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED, username=name).count()
    refused = AuditEvent.objects.filter(action=AuditAction.LOGIN_LOCKED, username=name).count()
    assert checked == USER_LIMIT and refused == attempts - USER_LIMIT


@pytest.mark.usefixtures("redis_ready")  # login failures are counted in Redis
@pytest.mark.django_db
def test_it_never_refuses_a_valid_token_because_passwords_failed_from_its_address(client):
    address = unique_address()
    user = get_user_model().objects.create_user(unique("scripted"), password=PASSWORD)
    _row, token = api_token_issue(user=user, name="script", days=None)
    for index in range(ADDRESS_LIMIT + 1):
        client.post("/login/", {"username": unique("guess"), "password": "wrong"}, REMOTE_ADDR=address)
    locked = client.post("/login/", {"username": user.get_username(), "password": PASSWORD}, REMOTE_ADDR=address)
    assert "Too many failed logins" in locked.content.decode()  # passwords from there are locked out
    answer = Client().get("/api/v1/hosts/", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=address)
    assert answer.status_code == 200, answer.content


@pytest.mark.usefixtures("redis_ready")  # login failures are counted in Redis
@pytest.mark.django_db
def test_it_does_not_count_a_successful_login_against_its_address():
    address = unique_address()
    user = get_user_model().objects.create_user(unique("regular"), password=PASSWORD)
    for _ in range(ADDRESS_LIMIT + 5):
        browser = Client()
        assert browser.post("/login/", {"username": user.get_username(), "password": PASSWORD},
                            REMOTE_ADDR=address).status_code == 302


# ---- the second factor's own count -------------------------------------------------------------

def enrolled_user() -> tuple[str, str]:
    user = get_user_model().objects.create_user(unique("totp"), password=PASSWORD)
    secret = pyotp.random_base32(32)
    device = TOTPDevice(user=user, confirmed=True)
    device.secret = secret
    device.save()
    return user.get_username(), secret


def password_step(browser: Client, name: str, address: str) -> None:
    response = browser.post("/login/", {"username": name, "password": PASSWORD}, REMOTE_ADDR=address)
    assert response.status_code == 302 and response["Location"] == "/account/second-factor/"


def code_step(browser: Client, code: str, address: str):
    return browser.post("/account/second-factor/", {"code": code}, REMOTE_ADDR=address)


def unused_code(secret: str) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30)


@pytest.mark.usefixtures("redis_ready")  # login failures are counted in Redis
@pytest.mark.django_db
def test_it_keeps_counting_wrong_codes_when_the_password_is_given_again():
    name, secret = enrolled_user()
    address = unique_address()
    attacker = Client()
    first_round = SECOND_FACTOR_LIMIT - 2
    for wrong_codes in (first_round, SECOND_FACTOR_LIMIT - first_round):  # the right password resets nothing
        password_step(attacker, name, address)
        for _ in range(wrong_codes):
            assert code_step(attacker, "000000", address).status_code == 400
    password_step(attacker, name, address)
    refused = code_step(attacker, unused_code(secret), address)
    assert "Too many failed logins" in refused.content.decode()
    assert attacker.get("/vms/").status_code == 302  # not logged in
    assert AuditEvent.objects.filter(action=AuditAction.TOTP_FAILED, username=name).count() == SECOND_FACTOR_LIMIT


@pytest.mark.usefixtures("redis_ready")  # login failures are counted in Redis
@pytest.mark.django_db
def test_it_resets_the_count_of_codes_only_with_a_complete_login():
    name, secret = enrolled_user()
    address = unique_address()
    now = time.time()
    for code in (pyotp.TOTP(secret).at(now), pyotp.TOTP(secret).at(now + 30)):  # each code works once
        browser = Client()
        password_step(browser, name, address)
        for _ in range(SECOND_FACTOR_LIMIT - 1):
            assert code_step(browser, "000000", address).status_code == 400
        assert code_step(browser, code, address).status_code == 302
        assert browser.get("/vms/").status_code == 200


# ---- through the web server (uvicorn), started as the Procfile starts it ---------------------------

def procfile_web(port: int) -> list[str]:
    web = next(line for line in (stack.ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    argv = shlex.split(web.removeprefix("web:").replace("${VMSITE_PORT:-8000}", str(port)))
    return [str(stack.VENV_BIN / Path(argv[0]).name), *argv[1:]]


def login_over_http(port: int, source: str, username: str, forwarded_for: str | None) -> str:
    """A login with a wrong password, as a browser sends it, from `source` (a loopback address)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, source_address=(source, 0), timeout=60)
    try:
        conn.request("GET", "/login/")
        page = conn.getresponse()
        body = page.read().decode()
        cookie = re.search(r"csrftoken=([^;]+)", page.getheader("Set-Cookie") or "").group(1)
        form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
        headers = {"Cookie": f"csrftoken={cookie}", "Content-Type": "application/x-www-form-urlencoded"}
        if forwarded_for is not None:
            headers["X-Forwarded-For"] = forwarded_for
        conn.request("POST", "/login/", body=urlencode({"csrfmiddlewaretoken": form_token, "username": username,
                                                        "password": "wrong"}), headers=headers)
        answer = conn.getresponse()
        return answer.read().decode()
    finally:
        conn.close()


@pytest.mark.integration
def test_it_ignores_forged_forwarded_addresses_on_the_server_the_procfile_starts(transactional_db, redis_ready,
                                                                                  tmp_path):
    octets = secrets.randbelow(200) + 20, secrets.randbelow(250) + 1
    proxy, stranger = f"127.{octets[0]}.{octets[1]}.1", f"127.{octets[0]}.{octets[1]}.2"
    port = stack.free_port()
    server = stack.start_process("web-procfile", procfile_web(port), log_dir=tmp_path,
                                 env=stack.stack_env(TRUSTED_PROXIES=proxy))
    try:
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), timeout=60, message="the web server listening")
        # A client that is not the proxy rotates the header, sends an empty one and garbage.
        forged = [f"203.0.113.{index}" for index in range(ADDRESS_LIMIT - 2)] + ["", "not-an-ip"]
        for index, header in enumerate(forged):
            login_over_http(port, stranger, unique(f"rotating{index}"), header)
        refused = login_over_http(port, stranger, unique("one-more"), "203.0.113.250")
        assert "Too many failed logins" in refused
        addresses = set(AuditEvent.objects.filter(action__in=[AuditAction.LOGIN_FAILED, AuditAction.LOGIN_LOCKED])
                        .values_list("address", flat=True))
        assert addresses == {stranger}
        # The trusted proxy's header names the client; garbage from it names the proxy.
        login_over_http(port, proxy, unique("behind-proxy"), "6.6.6.6, 198.51.100.44")
        login_over_http(port, proxy, unique("behind-proxy"), "not-an-ip")
        latest = list(AuditEvent.objects.order_by("-pk").values_list("address", flat=True)[:2])
        assert latest == [proxy, "198.51.100.44"]
        # uvicorn itself would believe any client on 127.0.0.1 (its --forwarded-allow-ips default):
        # the Procfile turns that off, so only TRUSTED_PROXIES decide.
        login_over_http(port, "127.0.0.1", unique("local-forger"), "198.51.100.45")
        assert AuditEvent.objects.order_by("-pk").values_list("address", flat=True)[0] == "127.0.0.1"
    finally:
        server.stop()


# ---- tokens end with the sessions (row 12) -------------------------------------------------------

def token_works(token: str) -> bool:
    return Client().get("/api/v1/hosts/", HTTP_AUTHORIZATION=f"Bearer {token}",
                        REMOTE_ADDR=unique_address()).status_code == 200


@pytest.mark.usefixtures("redis_ready")  # login failures are counted in Redis
@pytest.mark.django_db
def test_it_revokes_a_users_tokens_when_an_administrator_sets_their_password(admin_client):
    user = get_user_model().objects.create_user(unique("reset"), password=PASSWORD)
    bystander = get_user_model().objects.create_user(unique("bystander"), password=PASSWORD)
    tokens = [api_token_issue(user=user, name=name, days=None)[1] for name in ("ci", "backup")]
    kept = api_token_issue(user=bystander, name="ci", days=None)[1]
    assert all(token_works(token) for token in tokens)
    response = admin_client.post(f"/users/{user.pk}/password/", {"password": "another long password",
                                                                   "password2": "another long password"})
    assert response.status_code == 302, response.content
    assert not any(token_works(token) for token in tokens) and token_works(kept)
    revoked = AuditEvent.objects.filter(action=AuditAction.TOKEN_REVOKED, target__startswith=user.get_username())
    assert sorted(revoked.values_list("detail", flat=True)) == ["password set by an administrator"] * 2


@pytest.mark.usefixtures("redis_ready")  # login failures are counted in Redis
@pytest.mark.django_db
def test_it_revokes_the_users_tokens_when_they_log_out_everywhere():
    user = get_user_model().objects.create_user(unique("leaving"), password=PASSWORD)
    token = api_token_issue(user=user, name="laptop script", days=None)[1]
    browser = Client()
    browser.force_login(user)
    assert token_works(token)
    assert browser.post("/account/sessions/end/").status_code == 302
    assert not token_works(token)
    assert AuditEvent.objects.get(action=AuditAction.TOKEN_REVOKED).detail == "logged out everywhere"
