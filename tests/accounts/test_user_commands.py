"""Users changed from the shell go through the same audited services as the Users page."""
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.models import AuditAction, AuditEvent
from api.models import ApiToken
from api.tokens import api_token_issue

pytestmark = [pytest.mark.django_db]


def test_it_sets_a_password_audited_and_revokes_the_users_tokens(monkeypatch, capsys):
    user = get_user_model().objects.create_user("shell-reset", password="an old long password")
    api_token_issue(user=user, name="ci", days=None)
    monkeypatch.setenv("VMSITE_NEW_PASSWORD", "a brand new long password")
    call_command("user_password", "shell-reset")
    user.refresh_from_db()
    assert user.check_password("a brand new long password")
    assert not ApiToken.objects.filter(user=user).exists()
    assert AuditEvent.objects.filter(action=AuditAction.USER_CHANGED, target="shell-reset",
                                     detail="password set with manage.py").exists()
    assert AuditEvent.objects.filter(action=AuditAction.TOKEN_REVOKED, detail="password set with manage.py").exists()


@pytest.mark.parametrize("username, password, message", [
    ("shell-weak", "password", "This password is too common"),
    ("nobody-here", "a brand new long password", "No user 'nobody-here'"),
])
def test_it_refuses_a_weak_password_or_an_unknown_user(monkeypatch, username, password, message):
    get_user_model().objects.create_user("shell-weak", password="an old long password")
    monkeypatch.setenv("VMSITE_NEW_PASSWORD", password)
    with pytest.raises(CommandError, match=message):
        call_command("user_password", username)
    assert get_user_model().objects.get(username="shell-weak").check_password("an old long password")


def test_it_audits_the_first_administrator(monkeypatch):
    monkeypatch.setenv("VMSITE_ADMIN_USER", "first-admin")
    monkeypatch.setenv("VMSITE_ADMIN_PASSWORD", "a first long password")
    call_command("ensure_admin")
    assert AuditEvent.objects.get(action=AuditAction.USER_ADDED).target == "first-admin"
