import pytest


@pytest.fixture(autouse=True)
def no_failures_left(login_failures_cleared):
    """Each test starts and ends with no failed logins counted."""
