"""Login lockout, and the audit log: what is recorded, who may read it, the filters, the CSV."""
import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import AuditAction, AuditEvent

pytestmark = [pytest.mark.django_db]

PASSWORD = "a long enough password"


@pytest.fixture
def alice():
    return get_user_model().objects.create_superuser("alice", password=PASSWORD)


def log_in(client: Client, username: str, password: str, address: str = "192.0.2.10"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_five_failures_lock_the_user_name_even_for_the_right_password(client, alice):
    for _ in range(5):
        assert log_in(client, "alice", "wrong").status_code == 200
    refused = log_in(client, "alice", PASSWORD)
    assert refused.status_code == 200 and "Too many failed logins. Try again in 15 minute(s)." in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED, username="alice").count() == 5
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_LOCKED, username="alice", result="refused").exists()
    # Another user name from elsewhere is not locked by alice's failures.
    get_user_model().objects.create_user("bob", password=PASSWORD)
    assert log_in(Client(), "bob", PASSWORD, address="192.0.2.99").status_code == 302


def test_user_names_differing_in_case_or_spaces_share_the_count(client, alice):
    for name in ("alice", "ALICE", " Alice ", "alicE", "alice"):
        log_in(client, name, "wrong")
    assert "Too many failed logins" in log_in(client, "alice", PASSWORD).content.decode()


def test_twenty_failures_from_one_address_lock_that_address(client, alice):
    for index in range(20):
        log_in(client, f"nobody{index}", "wrong", address="198.51.100.7")
    assert "Too many failed logins" in log_in(client, "alice", PASSWORD, address="198.51.100.7").content.decode()
    assert log_in(Client(), "alice", PASSWORD, address="198.51.100.8").status_code == 302


def test_a_success_resets_the_count(client, alice):
    for _ in range(4):
        log_in(client, "alice", "wrong")
    assert log_in(client, "alice", PASSWORD).status_code == 302
    client.post("/logout/")
    for _ in range(4):
        log_in(client, "alice", "wrong")
    assert log_in(client, "alice", PASSWORD).status_code == 302
    actions = list(AuditEvent.objects.filter(username="alice").values_list("action", flat=True))
    assert actions.count(AuditAction.LOGIN) == 2 and AuditAction.LOGOUT in actions


def test_the_audit_log_is_for_administrators_filters_and_exports_csv(client, alice):
    get_user_model().objects.create_user("viewer", password=PASSWORD)
    log_in(client, "viewer", PASSWORD)
    assert client.get("/audit/").status_code == 403
    assert client.get("/audit/export.csv").status_code == 403
    log_in(Client(), "=cmd|' /C calc'!A0", "wrong")  # a formula as user name, for the CSV below

    admin = Client()
    log_in(admin, "alice", PASSWORD)
    page = admin.get("/audit/?action=login_failed").content.decode()
    assert 'data-action="login_failed"' in page and 'data-action="login"' not in page
    assert admin.get("/audit/?since=2026-02-10&until=2026-01-01").content.decode().count("The first day comes after") == 1
    rows = list(csv.reader(io.StringIO(b"".join(admin.get("/audit/export.csv?action=login_failed")
                                                .streaming_content).decode())))
    assert rows[0] == ["at", "username", "address", "action", "target", "result", "detail"]
    assert [row[1] for row in rows[1:]] == ["'=cmd|' /C calc'!A0"]  # stays text in a spreadsheet
    assert admin.post("/audit/", {}).status_code == 405  # nothing in it can be changed


def test_host_registration_changes_are_audited_with_who_and_from_where(alice):
    from hosts.models import Host

    client = Client()
    log_in(client, "alice", PASSWORD, address="203.0.113.5")
    host = Host.objects.create(name="audited", transport="test", address="default")
    client.post(f"/hosts/{host.pk}/enable/", {"enabled": "0"}, REMOTE_ADDR="203.0.113.5")
    client.post(f"/hosts/{host.pk}/remove/", REMOTE_ADDR="203.0.113.5")
    events = list(AuditEvent.objects.filter(target__startswith="audited").order_by("pk"))
    assert [(e.action, e.detail, e.username, e.address) for e in events] == [
        (AuditAction.HOST_CHANGED, "disabled", "alice", "203.0.113.5"),
        (AuditAction.HOST_REMOVED, "", "alice", "203.0.113.5"),
    ]
