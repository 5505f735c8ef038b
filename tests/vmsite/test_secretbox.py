"""The secret box (vmsite/secretbox.py): secrets sealed at rest with a key-encryption key kept
outside the database, each bound to what it is for."""
import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.vmsite.test_settings import start_django
from vmsite import env, secretbox

KEY = secretbox.parse_keys(secretbox.generate_key())
OTHER = secretbox.parse_keys(secretbox.generate_key())


def test_it_opens_what_it_sealed_and_never_shows_the_plaintext():
    sealed = secretbox.seal("JBSWY3DPEHPK3PXP", context="totp:1", keys=KEY)
    assert sealed.startswith(f"sb1:{KEY[0].id}:") and "JBSWY3DPEHPK3PXP" not in sealed
    assert secretbox.unseal(sealed, context="totp:1", keys=KEY) == "JBSWY3DPEHPK3PXP"
    assert secretbox.seal("JBSWY3DPEHPK3PXP", context="totp:1", keys=KEY) != sealed  # a fresh nonce each time


@pytest.mark.parametrize("change", ["context", "key", "tampered", "garbage"])
def test_it_refuses_a_value_for_another_context_another_key_or_changed(change):
    sealed = secretbox.seal("secret", context="totp:1", keys=KEY)
    context, keys = "totp:1", KEY
    if change == "context":
        context = "totp:2"  # copied into another user's row
    elif change == "key":
        keys = OTHER
    elif change == "tampered":
        sealed = sealed[:-6] + ("AAAA" if not sealed.endswith("AAAA==") else "BBBB") + sealed[-2:]
    else:
        sealed = "JBSWY3DPEHPK3PXP"
    with pytest.raises(secretbox.SecretBoxError):
        secretbox.unseal(sealed, context=context, keys=keys)


def test_it_seals_with_the_first_key_and_opens_with_any_while_keys_are_replaced():
    old_sealed = secretbox.seal("secret", context="c", keys=OTHER)
    both = KEY + OTHER
    assert secretbox.unseal(old_sealed, context="c", keys=both) == "secret"
    assert secretbox.seal("secret", context="c", keys=both).startswith(f"sb1:{KEY[0].id}:")


@pytest.mark.parametrize("value, message", [("", "no key given"), ("c2hvcnQ=", "must be 32 bytes .*not 5"),
                                            ("!!!!", "not URL-safe base64")])
def test_it_names_the_variable_and_the_fault_of_a_bad_key(monkeypatch, tmp_path, value, message):
    monkeypatch.setenv("SOME_BOX_KEY", value)
    if value == "":
        (tmp_path / "secret_box_key").write_text(" ")  # an empty generated file is as bad as none
    with pytest.raises(ImproperlyConfigured, match=f"SOME_BOX_KEY: .*{message}"):
        env.secret_box_keys("SOME_BOX_KEY", tmp_path)


def test_it_reads_the_key_from_a_file_named_by_the_file_variable(monkeypatch, tmp_path):
    key_file = tmp_path / "kek"
    key_file.write_text(secretbox.generate_key() + "\n")
    monkeypatch.setenv("SOME_BOX_KEY_FILE", str(key_file))
    assert env.secret_box_keys("SOME_BOX_KEY", tmp_path / "data")[0].secret == \
        secretbox.parse_keys(key_file.read_text())[0].secret
    assert not (tmp_path / "data").exists()  # nothing generated when a key is given


def test_it_generates_a_private_key_file_in_the_data_folder_once(tmp_path):
    assert start_django(tmp_path).returncode == 0
    key_file = tmp_path / "secret_box_key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    first = key_file.read_text()
    assert secretbox.parse_keys(first)
    assert start_django(tmp_path).returncode == 0 and key_file.read_text() == first
