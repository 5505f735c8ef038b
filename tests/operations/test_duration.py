"""An operation's run time as the operation page writes it."""
from datetime import datetime, timedelta, timezone

import pytest

from operations.models import Operation

START = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("seconds", "text"), [
    (0.432106, "0.43 s"), (9.994, "9.99 s"), (12.4, "12 s"), (185, "3 min 05 s"), (3720, "1 h 02 min"),
])
def test_it_writes_how_long_an_operation_ran_as_people_read_it(seconds, text):
    operation = Operation(started_at=START, finished_at=START + timedelta(seconds=seconds))
    assert operation.duration == text


def test_an_operation_that_has_not_finished_has_no_duration():
    assert Operation(started_at=START).duration == ""
