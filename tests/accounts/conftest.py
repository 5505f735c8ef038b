import pytest
import redis
from django.conf import settings


@pytest.fixture(autouse=True)
def no_failures_left(redis_ready):
    """Each test starts and ends with no failed logins counted (the counts live in Redis)."""
    def clear():
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter("vmsite:login-failures:*"):
            client.delete(key)

    clear()
    yield
    clear()
