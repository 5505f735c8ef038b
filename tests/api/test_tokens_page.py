"""Making and revoking API tokens on the account page."""
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import AuditAction, AuditEvent
from api.models import ApiToken
from api.tokens import api_token_issue

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def someone(db):
    user = get_user_model().objects.create_user("someone", password="x")
    client = Client()
    client.force_login(user)
    client.user = user
    return client


def made_token(response) -> str:
    return re.search(rb'id="new-token-value">([^<]+)<', response.content).group(1).decode()


def test_a_token_is_shown_once_and_works(someone):
    response = someone.post("/account/tokens/", {"name": "backup script", "days": "30"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    token = made_token(response)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/vms/").status_code == 200
    page = someone.get("/account/")
    assert token.encode() not in page.content and b"backup script" in page.content
    assert AuditEvent.objects.filter(action=AuditAction.TOKEN_CREATED, user=someone.user).exists()


def test_revoking_stops_the_token_and_only_its_owner_may(someone):
    row, token = api_token_issue(user=someone.user, name="ci", days=None)
    other = get_user_model().objects.create_user("other", password="x")
    other_row, _ = api_token_issue(user=other, name="theirs", days=None)
    assert someone.post(f"/account/tokens/{other_row.pk}/revoke/").status_code == 404
    assert ApiToken.objects.filter(pk=other_row.pk).exists()
    assert someone.post(f"/account/tokens/{row.pk}/revoke/").status_code == 302
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/vms/").status_code == 401
    assert AuditEvent.objects.filter(action=AuditAction.TOKEN_REVOKED).count() == 1


@pytest.mark.parametrize("data, message", [
    ({"name": ""}, b"This field is required"),
    ({"name": "x" * 65}, b"at most 64 characters"),
    ({"name": "<script>"}, b"Use letters, digits"),
    ({"name": "a\x00b"}, b"Null characters are not allowed"),
    ({"name": "ok", "days": "0"}, b"greater than or equal to 1"),
    ({"name": "ok", "days": "99999"}, b"less than or equal to 3650"),
    ({"name": "ok", "days": "soon"}, b"Enter a whole number"),
])
def test_bad_token_input_is_refused_with_a_message(someone, data, message):
    response = someone.post("/account/tokens/", data)
    assert response.status_code == 400 and message in response.content
    assert not ApiToken.objects.exists()


def test_a_second_token_with_the_same_name_is_refused(someone):
    api_token_issue(user=someone.user, name="ci", days=None)
    response = someone.post("/account/tokens/", {"name": "ci"})
    assert response.status_code == 400 and b"already have a token called" in response.content


def test_an_administrator_who_must_have_a_second_factor_gets_no_token_without_one(settings, admin_user):
    settings.REQUIRE_TOTP_FOR_ADMINS = True
    client = Client()
    client.force_login(admin_user)
    response = client.post("/account/tokens/", {"name": "sneaky"})
    assert response.status_code == 400 and b"need a second factor" in response.content
    assert not ApiToken.objects.filter(name="sneaky").exists()


def test_a_token_made_before_the_rule_stops_working_under_it(settings, admin_user):
    _row, token = api_token_issue(user=admin_user, name="old", days=None)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/hosts/").status_code == 200
    settings.REQUIRE_TOTP_FOR_ADMINS = True
    assert api.get("/api/v1/hosts/").status_code == 401
