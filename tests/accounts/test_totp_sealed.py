"""Second-factor secrets are sealed at rest (issue 14, row 8): the database never holds one in
the clear, a sealed secret moved to another user does not open, and the migration seals the
plaintext secrets of an existing installation."""
import pyotp
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.models import TOTPDevice
from accounts.totp import start_enrolment, verify
from vmsite import secretbox

BEFORE = [("accounts", "0004_alter_auditevent_action")]
AFTER = [("accounts", "0005_totp_secret_sealed")]


def raw_rows() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_totpdevice")
        return cursor.fetchall()


@pytest.mark.django_db
def test_it_keeps_the_secret_sealed_in_the_database_and_still_checks_codes():
    user = get_user_model().objects.create_user("sealed-totp", password="x")
    device = start_enrolment(user)
    secret = device.secret
    assert len(secret) == 32
    assert secret not in repr(raw_rows())
    assert secretbox.is_sealed(TOTPDevice.objects.get(pk=device.pk).sealed_secret)
    assert verify(device, pyotp.TOTP(secret).now())


@pytest.mark.django_db
def test_it_does_not_open_a_secret_copied_to_another_users_device():
    mallory = get_user_model().objects.create_user("mallory", password="x")
    victim_device = start_enrolment(get_user_model().objects.create_user("victim", password="x"))
    copied = TOTPDevice.objects.create(user=mallory, sealed_secret=victim_device.sealed_secret)
    with pytest.raises(secretbox.SecretBoxError):
        copied.secret


@pytest.mark.django_db(transaction=True)
def test_it_seals_existing_plaintext_secrets_and_opens_them_again_going_back():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    user = old.get_model("auth", "User").objects.create(username="before-sealing", password="!")
    old.get_model("accounts", "TOTPDevice").objects.create(user_id=user.pk, secret="JBSWY3DPEHPK3PXP",
                                                           confirmed=True)
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        assert "JBSWY3DPEHPK3PXP" not in repr(raw_rows())
        new = executor.loader.project_state(AFTER).apps
        sealed = new.get_model("accounts", "TOTPDevice").objects.get(user_id=user.pk).sealed_secret
        assert TOTPDevice(user_id=user.pk, sealed_secret=sealed).secret == "JBSWY3DPEHPK3PXP"

        executor = MigrationExecutor(connection)
        executor.migrate(BEFORE)
        back = executor.loader.project_state(BEFORE).apps
        assert back.get_model("accounts", "TOTPDevice").objects.get(user_id=user.pk).secret == "JBSWY3DPEHPK3PXP"
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
