"""The second factor: enrolment, login with a code, replay and lockout, enforcement for
administrators, turning it off; logging out everywhere."""
import time

import pyotp
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import AuditAction, AuditEvent, TOTPDevice
from accounts.views_account import PENDING_SINCE

pytestmark = [pytest.mark.django_db]
PASSWORD = "a long enough password"


@pytest.fixture
def carol():
    return get_user_model().objects.create_user("carol", password=PASSWORD)


def logged_in(client: Client) -> bool:
    return client.get("/vms/").status_code == 200


def enrol(client: Client) -> str:
    client.post("/account/second-factor/start/")
    device = TOTPDevice.objects.get(user__username="carol")
    assert client.post("/account/second-factor/confirm/", {"code": "000000"}).status_code == 400
    assert client.post("/account/second-factor/confirm/", {"code": pyotp.TOTP(device.secret).now()}).status_code == 302
    return device.secret


def password_step(client: Client):
    return client.post("/login/", {"username": "carol", "password": PASSWORD})


def next_code(secret: str) -> str:
    """A code for the next time step: the current one was just used."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def test_enrolment_then_login_needs_the_code_and_a_code_works_once(client, carol):
    client.force_login(carol)
    page = client.get("/account/").content.decode()
    assert 'id="totp-state">off' in page
    secret = enrol(client)
    assert 'id="totp-state">on' in client.get("/account/").content.decode()
    assert AuditEvent.objects.filter(action=AuditAction.TOTP_ENABLED, username="carol").exists()

    fresh = Client()
    response = password_step(fresh)
    assert response.status_code == 302 and response["Location"] == "/account/second-factor/"
    assert not logged_in(fresh)  # the password alone opens nothing
    assert fresh.post("/account/second-factor/", {"code": "123456"}).status_code == 400
    assert AuditEvent.objects.filter(action=AuditAction.TOTP_FAILED, username="carol").count() == 1
    code = next_code(secret)
    assert fresh.post("/account/second-factor/", {"code": code}).status_code == 302
    assert logged_in(fresh)

    replay = Client()
    password_step(replay)
    assert replay.post("/account/second-factor/", {"code": code}).status_code == 400  # used already
    assert not logged_in(replay)


def test_wrong_codes_count_towards_the_lockout(client, carol):
    client.force_login(carol)
    secret = enrol(client)
    attacker = Client()
    password_step(attacker)
    for _ in range(5):
        attacker.post("/account/second-factor/", {"code": "000000"})
    response = attacker.post("/account/second-factor/", {"code": next_code(secret)})
    assert "Too many failed logins" in response.content.decode() and not logged_in(attacker)


def test_a_pending_login_expires_after_five_minutes(client, carol):
    client.force_login(carol)
    secret = enrol(client)
    slow = Client()
    password_step(slow)
    session = slow.session
    session[PENDING_SINCE] = time.time() - 301
    session.save()
    assert slow.post("/account/second-factor/", {"code": next_code(secret)})["Location"] == "/login/"
    assert not logged_in(slow)


def test_administrators_must_set_one_up_when_required_and_cannot_turn_it_off(client, settings):
    settings.REQUIRE_TOTP_FOR_ADMINS = True
    admin = get_user_model().objects.create_superuser("carol", password=PASSWORD)
    client.force_login(admin)
    assert client.get("/vms/")["Location"] == "/account/"
    secret = enrol(client)
    assert client.get("/vms/").status_code == 200
    refused = client.post("/account/second-factor/disable/", {"password": PASSWORD, "code": next_code(secret)})
    assert refused.status_code == 400 and TOTPDevice.objects.filter(user=admin).exists()


def test_turning_it_off_needs_the_password_and_a_code(client, carol):
    client.force_login(carol)
    secret = enrol(client)
    assert client.post("/account/second-factor/disable/", {"password": "wrong", "code": next_code(secret)}
                       ).status_code == 400
    assert client.post("/account/second-factor/disable/", {"password": PASSWORD, "code": "000000"}).status_code == 400
    assert client.post("/account/second-factor/disable/", {"password": PASSWORD, "code": next_code(secret)}
                       ).status_code == 302
    assert not TOTPDevice.objects.filter(user=carol).exists()
    assert password_step(Client()).status_code == 302 and AuditEvent.objects.filter(
        action=AuditAction.TOTP_DISABLED).exists()


def test_log_out_everywhere_ends_every_session_of_the_user_only(carol):
    laptop, phone, other = Client(), Client(), Client()
    laptop.force_login(carol)
    phone.force_login(carol)
    other.force_login(get_user_model().objects.create_user("dave", password=PASSWORD))
    assert laptop.post("/account/sessions/end/").status_code == 302
    assert not logged_in(laptop) and not logged_in(phone)
    assert logged_in(other)
    assert AuditEvent.objects.get(action=AuditAction.SESSIONS_ENDED).detail == "2 sessions"
