"""The test's own Redis (tests/redis_server.py) for the tests of services going away."""
from __future__ import annotations

import pytest

from tests import stack
from tests.redis_server import OwnRedis


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def own_redis_env(own_redis: OwnRedis, **extra: str) -> dict[str, str]:
    """The stack's environment with the test's Redis (settings_test reads the suite's base first)."""
    return stack.stack_env(REDIS_URL=own_redis.url, VMSITE_SUITE_REDIS_URL=own_redis.url, **extra)
