"""Which errors are outages (503 with words) and which are vmsite's own faults (500): no daemons."""
from __future__ import annotations

import sqlite3

import pytest
import redis
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as QueueError

from vmsite.outages import outage_message


def raised_from(error: Exception, cause: Exception) -> Exception:
    try:
        raise error from cause
    except Exception as exc:  # noqa: BLE001 - the chained exception is what Django hands the handler
        return exc


@pytest.mark.parametrize("error", [redis.ConnectionError("refused"), redis.TimeoutError("slow"), QueueError("gone")])
def test_redis_and_queue_errors_say_redis_is_unreachable(error):
    assert outage_message(error).startswith("Redis is unreachable; try again when it is back")


def test_a_lost_database_connection_says_the_database_is_unreachable():
    import psycopg

    lost = raised_from(OperationalError("server closed the connection unexpectedly"),
                       psycopg.OperationalError("server closed the connection unexpectedly"))
    assert outage_message(lost).startswith("The database is unreachable; nothing was changed")
    assert outage_message(InterfaceError("connection already closed")).startswith("The database is unreachable")


def test_a_locked_sqlite_database_says_busy_not_unreachable():
    locked = raised_from(OperationalError("database is locked"), sqlite3.OperationalError("database is locked"))
    assert outage_message(locked) == "The database is busy; nothing was changed, try again in a moment."


@pytest.mark.parametrize("error", [ValueError("bug"), KeyError("x"), redis.ResponseError("WRONGTYPE")])
def test_any_other_error_is_not_an_outage(error):
    assert outage_message(error) is None
