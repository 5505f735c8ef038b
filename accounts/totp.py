"""Second factor: TOTP codes (RFC 6238, 30 s steps, one step of clock drift either way)."""
from __future__ import annotations

import hmac
import time

import pyotp
import segno
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from accounts.models import TOTPDevice

ISSUER = "vmsite"
STEP_SECONDS = 30


def device_for(user: AbstractBaseUser) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user).first()


def has_second_factor(user: AbstractBaseUser) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def start_enrolment(user: AbstractBaseUser) -> TOTPDevice:
    """A new unconfirmed secret (replacing an unconfirmed one); a confirmed device stays as it is."""
    device = device_for(user)
    if device is not None and device.confirmed:
        return device
    TOTPDevice.objects.filter(user=user).delete()
    return TOTPDevice.objects.create(user=user, secret=pyotp.random_base32(32))


def provisioning_uri(device: TOTPDevice) -> str:
    return pyotp.TOTP(device.secret).provisioning_uri(name=device.user.get_username(), issuer_name=ISSUER)


def qr_svg(device: TOTPDevice) -> str:
    return segno.make(provisioning_uri(device), error="m").svg_inline(scale=4)


@transaction.atomic
def verify(device: TOTPDevice, code: str) -> bool:
    """True for a current code not used before; the step it matched is remembered."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return False
    device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
    totp = pyotp.TOTP(device.secret)
    now_step = int(time.time()) // STEP_SECONDS
    for step in (now_step - 1, now_step, now_step + 1):
        if step > device.last_step and hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            TOTPDevice.objects.filter(pk=device.pk).update(last_step=step, confirmed=True)
            return True
    return False
