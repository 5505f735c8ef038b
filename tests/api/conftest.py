import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.models import Grant, Role
from api.tokens import api_token_issue


@pytest.fixture(autouse=True)
def no_failures_left(login_failures_cleared):
    """Wrong tokens count as failed logins from the address: each test starts with none."""


def token_client(user) -> APIClient:
    _row, token = api_token_issue(user=user, name="tests", days=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def api_as(db):
    """api_as(role, host=None): an API client with a token of a new user in that role."""
    made = 0

    def make(role: str, host=None, domain=None) -> APIClient:
        nonlocal made
        made += 1
        users = get_user_model()
        name = f"{role}{made}"
        user = users.objects.create_superuser(name, password="x") if role == "admin" else \
            users.objects.create_user(name, password="x")
        if role in ("viewer", "operator") and (host or domain):
            Grant.objects.create(user=user, host=host if domain is None else None, domain=domain,
                                 role=Role.VIEWER if role == "viewer" else Role.OPERATOR)
        client = token_client(user)
        client.user = user
        return client

    return make
