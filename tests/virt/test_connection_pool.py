"""The connection pool: dropping a host's connection never breaks a call another thread is making
on it, and the dropped connection is closed once its last session ends."""
import libvirt
import pytest

from virt.connection import ConnectionPool


def test_a_dropped_connection_stays_usable_by_its_session_and_is_closed_when_that_ends():
    pool = ConnectionPool()
    with pool.session("test:///default") as conn:
        pool.drop("test:///default")  # as a fresh reconcile of another host row with this URI does
        assert conn.getLibVersion() > 0  # still usable by the session that holds it
        with pool.session("test:///default") as fresh:
            assert fresh is not conn
    with pytest.raises(libvirt.libvirtError):
        conn.getLibVersion()  # closed once its last session ended
    with pool.session("test:///default") as again:
        assert again is fresh and again.getLibVersion() > 0
    pool.close_all()


def test_a_connection_dropped_while_unused_is_closed_at_once():
    pool = ConnectionPool()
    with pool.session("test:///default") as conn:
        pass
    pool.drop("test:///default")
    with pytest.raises(libvirt.libvirtError):
        conn.getLibVersion()
