"""When a service vmsite needs is unreachable: the words that say which, and the 503 answer.

Whatever reaches Redis (the login lockout store, the Celery queue, console tokens) or the database
and finds it gone ends in a request's uncaught exception; the site's 500 handler (`server_error`,
handler500 in vmsite/urls.py) turns those into 503 with a message saying what is down and what was
not done: JSON `{"error": "..."}` for the API, the error page for the rest. Pages that only read the
database never reach Redis, so they keep working. Nothing needs restarting when the service
returns: Redis clients reconnect on their next call, and a database connection that broke is
dropped and opened again (CONN_HEALTH_CHECKS, vmsite/env.py).
"""
from __future__ import annotations

import sqlite3
import sys

import redis
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.defaults import server_error as django_server_error
from kombu.exceptions import OperationalError as QueueError

REDIS_DOWN = "Redis is unreachable"
DATABASE_DOWN = "The database is unreachable"
DATABASE_BUSY = "The database is busy"


class ServiceUnavailable(Exception):
    """A service vmsite needs is unreachable; the message says which, and what was not done."""


def redis_down(what_was_not_done: str) -> ServiceUnavailable:
    """The exception for a Redis outage: "Redis is unreachable: <what was not done>"."""
    return ServiceUnavailable(f"{REDIS_DOWN}: {what_was_not_done}")


def outage_message(exc: BaseException | None) -> str | None:
    """What is down, in words, if `exc` says a service is unreachable; None for any other error."""
    if isinstance(exc, ServiceUnavailable):
        return str(exc)
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, QueueError)):
        return f"{REDIS_DOWN}; try again when it is back (the server's log has the details)."
    if isinstance(exc, (DatabaseOperationalError, DatabaseInterfaceError)):
        if isinstance(exc.__cause__, sqlite3.OperationalError):  # "database is locked": a writer held it too long
            return f"{DATABASE_BUSY}; nothing was changed, try again in a moment."
        return f"{DATABASE_DOWN}; nothing was changed, try again in a moment (the server's log has the details)."
    return None


def service_unavailable(request: HttpRequest, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": message}, status=503)
    try:
        return render(request, "503.html", {"explanation": message}, status=503)
    except Exception:  # the page needs the database: if that is down too, the words alone
        return HttpResponse(message, content_type="text/plain; charset=utf-8", status=503)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: called while the uncaught exception is being handled, so it can tell an outage
    (503, saying what is down) from a fault of vmsite's own (500)."""
    message = outage_message(sys.exc_info()[1])
    if message is not None:
        return service_unavailable(request, message)
    return django_server_error(request)
