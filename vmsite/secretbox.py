"""Secrets kept at rest in the database (second-factor seeds today, host credentials next),
sealed with a key-encryption key that is not in the database.

AES-256-GCM with a random 96-bit nonce per seal. Each sealed value is bound to a context (what it
is and whose, e.g. "totp-secret:user:7"): a value copied into another row or column does not open
there. SECRET_BOX_KEY (or SECRET_BOX_KEY_FILE) holds one or more keys, comma-separated: the first
seals, every one opens, so a key is replaced by putting the new one first, re-sealing, then
dropping the old one. Without it, a key is generated once into the data folder (mode 0600).

A sealed value reads `sb1:<key id>:<base64 of nonce and ciphertext>`; the key id (the first bytes
of the key's SHA-256) says which key opens it, and reveals nothing else about the key."""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "sb1"
KEY_BYTES = 32
NONCE_BYTES = 12


class SecretBoxError(Exception):
    """A sealed value cannot be opened (wrong key, changed, or sealed for another context)."""


class BadKey(ValueError):
    """A key-encryption key is malformed (the message says how)."""


@dataclass(frozen=True)
class Key:
    id: str
    secret: bytes


def generate_key() -> str:
    """A new key-encryption key, as SECRET_BOX_KEY takes it (URL-safe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def parse_keys(text: str) -> list[Key]:
    """The keys of a SECRET_BOX_KEY value, first (the sealing one) first."""
    keys = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            secret = base64.b64decode(item.encode(), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise BadKey("a key is not URL-safe base64") from None
        if len(secret) != KEY_BYTES:
            raise BadKey(f"a key must be {KEY_BYTES} bytes (44 characters of base64), not {len(secret)}")
        keys.append(Key(id=hashlib.sha256(secret).hexdigest()[:8], secret=secret))
    if not keys:
        raise BadKey("no key given")
    return keys


def seal(plaintext: str, *, context: str, keys: list[Key] | None = None) -> str:
    key = (keys or _configured_keys())[0]
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key.secret).encrypt(nonce, plaintext.encode(), context.encode())
    return f"{VERSION}:{key.id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def unseal(value: str, *, context: str, keys: list[Key] | None = None) -> str:
    version, _, rest = value.partition(":")
    key_id, _, body = rest.partition(":")
    if version != VERSION or not body:
        raise SecretBoxError("This is not a sealed value.")
    key = next((key for key in keys or _configured_keys() if key.id == key_id), None)
    if key is None:
        raise SecretBoxError(f"Sealed with key {key_id}, which SECRET_BOX_KEY does not hold.")
    try:
        raw = base64.urlsafe_b64decode(body.encode())
        return AESGCM(key.secret).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
    except (binascii.Error, ValueError, InvalidTag):
        raise SecretBoxError("The sealed value was changed, or was sealed for something else.") from None


def is_sealed(value: str) -> bool:
    return value.startswith(f"{VERSION}:")


def _configured_keys() -> list[Key]:
    from django.conf import settings

    return settings.SECRET_BOX_KEYS
