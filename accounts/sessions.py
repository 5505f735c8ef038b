"""Ending every session of a user ("log out everywhere"), the database session store's way."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.utils import timezone


def end_all_sessions(user: AbstractBaseUser) -> int:
    user_id = str(user.pk)
    ended = [session.pk for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
             if session.get_decoded().get("_auth_user_id") == user_id]
    Session.objects.filter(pk__in=ended).delete()
    return len(ended)
