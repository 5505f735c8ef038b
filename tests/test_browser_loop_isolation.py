"""A test that does not drive the browser, run after one that did (Playwright's loop is then marked
running in the worker's thread), sees no running loop, and writes on the connection of its own
database transaction: its rows are gone for the next test (tests/conftest.py,
pytest_runtest_protocol). The four run in the order written when the module runs in one process;
`make test` may hand them to different workers, where the first two check less."""
import asyncio

import pytest

from hosts.models import Host

pytestmark = pytest.mark.django_db  # all four in one group: pytest-django keeps their order


def test_a_browser_test_runs_under_playwrights_loop(chromium):
    assert asyncio._get_running_loop() is not None


def test_the_next_test_sees_no_loop_and_writes_inside_its_transaction():
    assert asyncio._get_running_loop() is None
    Host.objects.create(name="rolled-back", transport="test", address="default")


def test_the_rows_of_the_test_before_are_gone():
    assert not Host.objects.filter(name="rolled-back").exists()


def test_a_browser_test_after_them_still_has_playwrights_loop(chromium):
    assert asyncio._get_running_loop() is not None
