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


def test_threads_that_drop_and_use_one_uri_at_once_never_meet_a_closed_connection():
    """What four host rows with one URI do in the listener: each reconcile drops, then uses."""
    import threading

    pool = ConnectionPool()
    errors: list[Exception] = []

    def reconcile_again_and_again() -> None:
        for _ in range(40):
            pool.drop("test:///default")
            try:
                with pool.session("test:///default") as conn:
                    conn.getLibVersion()
                    conn.listAllDomains()
            except Exception as exc:  # a closed connection would raise (or worse)
                errors.append(exc)

    threads = [threading.Thread(target=reconcile_again_and_again) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    pool.close_all()
    assert errors == []


def _rpc_failure() -> libvirt.libvirtError:
    """What libvirt raises when the remote end goes away (code and domain as the RPC layer sets them):
    losing a real remote connection needs a host to kill, the pool's rule needs only the error."""
    exc = libvirt.libvirtError("End of file while reading data: Input/output error")
    exc.err = (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC, "End of file while reading data", 2,
               None, None, None, 0, 0)
    return exc


@pytest.mark.parametrize("translated_inside", [False, True])
def test_a_lost_connection_is_dropped_whether_or_not_virt_translated_the_error(translated_inside):
    from virt.errors import HostUnavailable, translate

    pool = ConnectionPool()
    with pytest.raises(HostUnavailable):
        with pool.session("test:///default") as lost:
            exc = _rpc_failure()
            if translated_inside:  # as a @raises_typed function of virt/ does
                raise translate(exc) from exc
            raise exc
    with pool.session("test:///default") as fresh:
        assert fresh is not lost
    pool.close_all()
