"""Short Redis calls on requests reuse the process's connections (vmsite/redis_clients.py): a client
made per call opened a TCP connection and sent HELLO and CLIENT SETINFO on every API request."""
from __future__ import annotations

import pytest
from redis.connection import AbstractConnection

from accounts.lockout import token_locked_for
from consoles.tokens import token_take
from operations.locks import lock_held

pytestmark = pytest.mark.integration


@pytest.fixture
def connections_made(monkeypatch) -> list[AbstractConnection]:
    """Every Redis connection this process opens from now on (the real ones, only counted)."""
    made = []
    on_connect = AbstractConnection.on_connect_check_health

    def counted(connection: AbstractConnection, *args, **kwargs) -> None:
        made.append(connection)
        on_connect(connection, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "on_connect_check_health", counted)
    return made


def test_token_checks_console_tokens_and_locks_reuse_one_connection_each(redis_ready, connections_made):
    for _ in range(20):
        assert token_locked_for("192.0.2.7") == 0
        assert token_take("not-a-token") is None
        with lock_held("redis-clients-test", wait=1):
            pass
    # One pool per set of timeouts: the lockout's, the console tokens', the locks'.
    assert len(connections_made) <= 3, f"{len(connections_made)} connections for 60 short calls"
