"""The listener: host leases shared among listeners, callbacks registered once per connection,
coalesced refreshes, and the settling wait after a stop."""
import queue
import signal
import threading
import time
from pathlib import Path

import libvirt
import pytest
import redis
from django.utils import timezone

from events.watching import lease_holders
from listener.listener import DATABASE_RETRY, REFRESH_RETRIES, SETTLING_DELAY, STOP_WAIT, Listener, Watch
from domains.choices import DomainState
from domains.models import Domain
from hosts.models import Host
from tests import stack
from virt.events import EventRecord

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


LEASE_SECONDS = 4  # LISTENER_LEASE_SECONDS for these listeners: the smallest the setting allows


def start_listener(name: str, log_dir, data_dir: Path | None = None) -> stack.StackProcess:
    """A listener process; with data_dir, as on a second node: a data folder of its own."""
    extra = {"LISTENER_LEASE_SECONDS": str(LEASE_SECONDS)}
    if data_dir is not None:
        data_dir.mkdir(mode=0o700, exist_ok=True)
        extra.update(VMSITE_DATA_DIR=str(data_dir), VMSITE_SUITE_VMSITE_DATA_DIR=str(data_dir))
    return stack.start_process(name, [str(stack.VENV_BIN / "python"), "manage.py", "listen"], log_dir=log_dir,
                               env=stack.stack_env(**extra))


def owners(client: redis.Redis, hosts: list[Host]) -> dict[int, str | None]:
    return lease_holders(client, [host.pk for host in hosts])


def pid_of(owner: str | None) -> int | None:
    return int(owner.split(":")[1]) if owner else None


def test_two_nodes_listeners_share_the_hosts_and_the_survivor_takes_over_a_killed_ones_and_its_events(
        redis_ready, stack_log_dir, tmp_path, harness, guests):
    harness_host = harness()
    guest = guests.define(harness_host.tcp_uri, start=True)
    live = Host.objects.create(name="leased-live", transport="tcp", address=harness_host.address)
    # A test-driver file per other host: test:///default keeps one state per process, and libvirt's
    # test driver does not survive four connections to it opened and closed at once from threads.
    sample = Path(__file__).resolve().parents[1] / "virt" / "samples" / "node.xml"
    hosts = [live]
    for index in range(3):
        node = tmp_path / f"node-{index}.xml"
        node.write_text(sample.read_text())
        hosts.append(Host.objects.create(name=f"leased-{index}", transport="test", address=str(node)))
    first = start_listener("listener-node-a", stack_log_dir)
    second = start_listener("listener-node-b", stack_log_dir, data_dir=tmp_path / "node-b")
    try:
        def shared_evenly() -> bool:
            pids = [pid_of(owner) for owner in owners(redis_ready, hosts).values()]
            return sorted(pids, key=str) == sorted([first.pid] * 2 + [second.pid] * 2, key=str)

        stack.wait_until(shared_evenly, timeout=20, message="the two listeners to hold two hosts each")
        stack.wait_until(lambda: Domain.objects.filter(uuid=guest.UUIDString(), state=DomainState.RUNNING).exists(),
                         timeout=20, message="the harness guest stored as running")
        victim, survivor = (first, second) if pid_of(owners(redis_ready, [live])[live.pk]) == first.pid else (second,
                                                                                                             first)
        victim.kill(signal.SIGKILL)
        killed_at, killed_when = time.monotonic(), timezone.now()
        stack.wait_until(lambda: {pid_of(o) for o in owners(redis_ready, hosts).values()} == {survivor.pid},
                         timeout=LEASE_SECONDS + 10, interval=0.05, message="the survivor to hold every host")
        takeover = time.monotonic() - killed_at
        print(f"takeover after kill -9: {takeover:.1f} s (lease {LEASE_SECONDS} s + round 2 s)")
        assert takeover <= LEASE_SECONDS + 2 + 2, f"the hosts were taken over after {takeover:.1f} s"
        stack.wait_until(lambda: Host.objects.filter(pk=live.pk, synced_at__gt=killed_when).exists(),
                         timeout=15, message="the survivor's reconcile of the harness host")

        harness_host.virsh("suspend", guest.name())  # only an event tells the survivor now: no reconcile runs
        stack.wait_until(lambda: Domain.objects.filter(uuid=guest.UUIDString(), state=DomainState.PAUSED).exists(),
                         timeout=5, message="the suspend, through the survivor's events")
    finally:
        first.stop()
        second.stop()
    assert set(owners(redis_ready, hosts).values()) == {None}  # a clean stop gives its leases back


def test_a_host_with_settings_that_cannot_make_a_uri_is_marked_and_the_others_are_watched(listener):
    broken = Host.objects.create(name="broken", transport="test", address="not a path")
    sound = Host.objects.create(name="sound", transport="test", address="default")
    stack.wait_until(lambda: Host.objects.get(pk=sound.pk).status == "online", timeout=15, message="sound online")
    broken.refresh_from_db()
    assert broken.status == "error" and "Invalid connection settings" in broken.status_reason
    assert listener.process.poll() is None


@pytest.fixture
def running_listener(redis_ready):
    listener = Listener()
    thread = threading.Thread(target=listener.run, name="listener-under-test", daemon=True)
    thread.start()
    yield listener
    listener.stop()  # returns once its pools' threads are done: none writes while the database is flushed
    thread.join(timeout=10)


def test_callbacks_are_registered_again_exactly_once_after_a_reconnect(running_listener, harness, guests):
    harness_host = harness()
    host = Host.objects.create(name="reconnecting", transport="tcp", address=harness_host.address)
    guest = guests.define(harness_host.tcp_uri, start=True)
    stack.wait_until(lambda: running_listener.registrations_made == 1, timeout=15, message="callbacks registered")

    harness_host.kill_libvirtd()
    stack.wait_until(lambda: Host.objects.get(pk=host.pk).status == "offline", timeout=10, message="offline")
    harness_host.start_libvirtd()
    stack.wait_until(lambda: running_listener.registrations_made == 2, timeout=15, message="registered again")
    watch = running_listener.watches[host.pk]
    assert watch.registration is not None and watch.registration.count == 14
    stack.wait_until(lambda: not watch.reconciling, timeout=10, message="the reconcile after the reconnect")

    time.sleep(0.5)
    before = running_listener.events_received
    harness_host.virsh("suspend", guest.name())
    stack.wait_until(lambda: running_listener.events_received > before, timeout=5, message="the suspend event")
    time.sleep(1.0)
    assert running_listener.events_received - before == 1  # one callback set: one record per event


def test_stop_returns_only_once_the_work_running_on_its_threads_is_done(redis_ready):
    """A thread still writing after stop() returned deadlocked PostgreSQL's TRUNCATE at a test's flush."""
    listener = Listener()
    done = threading.Event()
    listener.executor.submit(lambda: (time.sleep(1.5), done.set()))
    thread = threading.Thread(target=listener.run, name="listener-under-test", daemon=True)
    thread.start()
    assert listener.started.wait(10)
    began = time.monotonic()
    listener.stop()
    assert done.is_set() and listener.finished.is_set()
    assert time.monotonic() - began < STOP_WAIT
    thread.join(timeout=10)


def test_a_stop_waits_to_settle_and_a_burst_on_one_vm_becomes_one_refresh(redis_ready):
    listener = Listener()
    stopped = EventRecord("domain", "6f1c2b5e-0000-4000-8000-000000000001", "lifecycle", detail=5)
    started = EventRecord("domain", stopped.uuid, "lifecycle", detail=2)

    class FakeWatch:  # only what _on_event reads
        host_id = 1
        reconciling = False

    began = time.monotonic()
    listener._on_event(FakeWatch, stopped)
    for _ in range(50):
        listener._on_event(FakeWatch, started)
    assert list(listener.pending) == [(1, "domain", stopped.uuid)]
    pending = listener.pending[(1, "domain", stopped.uuid)]
    assert pending.due - began >= SETTLING_DELAY - 0.01  # a reboot's passing stop is not shown
    assert pending.deadline - began <= 1.01


def test_a_vm_refresh_that_failed_is_tried_again_a_few_times(redis_ready):
    """A refresh that failed (the host busy, the database away) is tried again after DATABASE_RETRY,
    REFRESH_RETRIES times in a row at most; a success starts the count again. Without it, a failed
    refresh of the last event of a burst left its row wrong until the next reconnect."""
    listener = Listener()
    watch = Watch(host_id=1, uri="test:///default")
    uuid = "6f1c2b5e-0000-4000-8000-000000000003"
    key = (1, "domain", uuid)
    try:
        for _ in range(REFRESH_RETRIES):
            began = time.monotonic()
            listener._on_refreshed(watch, uuid, None)
            assert listener.pending.pop(key).due >= began + DATABASE_RETRY - 0.01
        listener._on_refreshed(watch, uuid, None)
        assert key not in listener.pending  # given up: the next reconcile reads it
        listener._on_refreshed(watch, uuid, time.monotonic())
        listener._on_refreshed(watch, uuid, None)
        assert key in listener.pending  # a success in between: tried again
    finally:
        for pool in (watch.worker, watch.slow_worker, watch.sample_worker):
            pool.shutdown()


def test_a_refresh_answers_the_events_received_before_it_began_to_read(redis_ready):
    """Events on a VM that came while its refresh waited for a thread need no read of their own: what
    caused them had happened when it began to read. (A burst on a loaded machine read each VM once more
    after its last event, and its rows were still wrong 5 s after it.) Later events, and events that
    need the whole VM read after a read of its run state alone, are read again."""
    listener = Listener()
    watch = Watch(host_id=1, uri="test:///default")
    uuid = "6f1c2b5e-0000-4000-8000-000000000004"
    key = (1, "domain", uuid)
    read_from = time.monotonic()

    def defined(received: float) -> EventRecord:
        return EventRecord("domain", uuid, "lifecycle", detail=0, received=received)

    def refresh_ends_after(event: EventRecord, *, full: bool, unread_since_queued: bool) -> bool:
        """Whether the VM is to be read again once a refresh that began at read_from ends."""
        watch.in_flight.add(uuid)
        listener._on_event(watch, event)
        if unread_since_queued:  # as _start_due_refreshes leaves an event on a VM in flight
            watch.dirty[uuid] = listener.pending.pop(key).unread
        listener._on_refreshed(watch, uuid, read_from, full)
        return listener.pending.pop(key, None) is not None

    try:
        for unread_since_queued in (False, True):
            assert not refresh_ends_after(defined(read_from - 0.1), full=True, unread_since_queued=unread_since_queued)
            assert refresh_ends_after(defined(read_from + 0.1), full=True, unread_since_queued=unread_since_queued)
            assert refresh_ends_after(defined(read_from - 0.1), full=False, unread_since_queued=unread_since_queued)
        resumed = EventRecord("domain", uuid, "lifecycle", detail=4, received=read_from - 0.1)
        assert not refresh_ends_after(resumed, full=False, unread_since_queued=True)
    finally:
        for pool in (watch.worker, watch.slow_worker, watch.sample_worker):
            pool.shutdown()


def test_a_lost_connection_is_closed_only_once_the_work_handed_it_is_done(redis_ready):
    """libvirt frees a closed connection under a thread still calling it: a worker's heap was
    corrupted once when libvirtd died under a graph round in getAllDomainStats."""
    listener = Listener()
    watch = Watch(host_id=1, uri="test:///default")
    conn = watch.conn = libvirt.open("test:///default")
    release = threading.Event()
    try:
        listener._using_conn(watch, watch.sample_worker.submit(release.wait, 10))
        listener._on_closed(watch, "libvirtd went away")
        assert watch.conn is None
        time.sleep(0.3)
        assert is_open(conn), "closed while a graph round still used it"
        release.set()
        stack.wait_until(lambda: not is_open(conn), timeout=5, message="the connection closed after the round")
    finally:
        release.set()
        for pool in (watch.worker, watch.slow_worker, watch.sample_worker):
            pool.shutdown()


def is_open(conn: libvirt.virConnect) -> bool:
    try:
        conn.getURI()
    except libvirt.libvirtError:
        return False
    return True


def test_the_hosts_page_says_when_no_listener_watches_a_host(redis_ready, stack_log_dir, admin_client):
    host = Host.objects.create(name="unwatched", transport="test", address="default")
    assert "not watched" in admin_client.get("/hosts/").content.decode()
    watcher = start_listener("listener-watch", stack_log_dir)
    try:
        stack.wait_until(lambda: owners(redis_ready, [host])[host.pk] is not None, timeout=15,
                         message="a listener to take the host")
        assert "not watched" not in admin_client.get("/hosts/").content.decode()
        assert "not watched" not in admin_client.get(f"/hosts/{host.pk}/").content.decode()
    finally:
        watcher.stop()
    assert "not watched" in admin_client.get(f"/hosts/{host.pk}/").content.decode()


def test_it_reads_a_vm_at_once_and_only_its_run_state_after_a_pause_or_a_resume(redis_ready):
    listener = Listener()
    uuid = "6f1c2b5e-0000-4000-8000-000000000002"
    key = (1, "domain", uuid)

    class FakeWatch:  # only what _on_event reads
        host_id = 1
        reconciling = False
        in_flight: set[str] = set()

    began = time.monotonic()
    listener._on_event(FakeWatch, EventRecord("domain", uuid, "lifecycle", detail=3))  # suspended
    assert listener.pending[key].due <= time.monotonic()  # the first record of a burst: no wait
    listener._on_event(FakeWatch, EventRecord("domain", uuid, "lifecycle", detail=4))  # resumed
    assert listener.pending[key].unread.full is False
    assert listener.pending[key].due >= began + 0.005  # the rest of the burst waits, to be one read
    listener._on_event(FakeWatch, EventRecord("domain", uuid, "device-added"))
    assert listener.pending[key].unread.full is True  # anything else: the whole VM is read again
    assert list(listener.pending) == [key]


def test_a_pause_stores_the_new_state_alone_and_any_other_event_reads_the_whole_vm(running_listener, harness,
                                                                                   guests):
    harness_host = harness()
    host = Host.objects.create(name="pausing", transport="tcp", address=harness_host.address)
    guest = guests.define(harness_host.tcp_uri, start=True)
    row = stack.wait_until(lambda: Domain.objects.filter(host=host, uuid=guest.UUIDString(), state=1).first(),
                           timeout=20, message="the running guest stored")
    watch = running_listener.watches[host.pk]
    # The start's own events may still be on their way (a whole run once read the VM again after the
    # marker): libvirt sends a connection's events in order, so once the read of a later event is
    # stored, the start's events have come too.
    harness_host.virsh("desc", guest.name(), "--live", "after the start")
    stack.wait_until(lambda: Domain.objects.get(pk=row.pk).details.get("description") == "after the start",
                     timeout=10, message="a later event's read stored")
    stack.wait_until(lambda: not watch.reconciling and not running_listener.pending and not watch.in_flight,
                     timeout=10, message="the start's reads done")
    Domain.objects.filter(pk=row.pk).update(details={"marker": "not read again"})

    harness_host.virsh("suspend", guest.name())
    stack.wait_until(lambda: Domain.objects.get(pk=row.pk).state == 3, timeout=5, message="paused stored")
    assert Domain.objects.get(pk=row.pk).details == {"marker": "not read again"}  # only the run state was read

    harness_host.virsh("desc", guest.name(), "--live", "a metadata change")
    stack.wait_until(lambda: "marker" not in Domain.objects.get(pk=row.pk).details, timeout=5,
                     message="the whole VM read again")
    assert Domain.objects.get(pk=row.pk).state == 3


def test_a_dropped_hosts_connection_is_closed_once_its_running_work_ends_and_its_queued_work_is_dropped(
        redis_ready):
    """Work still queued when a host is dropped is cancelled; concurrent.futures.wait() never counts such
    a future as done, so the connection stayed open for ever and a stop waited STOP_WAIT (10 s) for it."""
    listener = Listener()
    watch = Watch(host_id=1, uri="test:///default")
    conn = watch.conn = libvirt.open("test:///default")
    release = threading.Event()
    try:
        for _ in range(6):  # four run (VM_THREADS), two wait in the queue
            listener._using_conn(watch, watch.worker.submit(release.wait, 10))
        listener._drop(watch)
        time.sleep(0.3)
        assert is_open(conn), "closed while refreshes still used it"
        release.set()
        stack.wait_until(lambda: not is_open(conn), timeout=5, message="the connection closed after the refreshes")
        began = time.monotonic()
        listener._wait_for_retired(STOP_WAIT)
        assert time.monotonic() - began < 1, "a stop would wait for the closing thread"
    finally:
        release.set()


def test_a_full_reconcile_says_it_is_done_once_its_rows_are_written_before_it_describes_new_vms(redis_ready):
    """The VMs that had events during the reconcile after a connect are read again when it says it is done.
    It said so only after describing every VM it found new (one call each: seconds on a host with many),
    and until then its older view of a VM stopped meanwhile stood: a page showed Running for 10 s."""
    host = Host.objects.create(name="demo", transport="test", address="default")
    listener = Listener()
    said_done: list[tuple[tuple, list[dict]]] = []

    class Records(queue.Queue):
        def put(self, item, *args, **kwargs):
            said_done.append((item, list(Domain.objects.filter(host=host).values_list("details", flat=True))))
            super().put(item, *args, **kwargs)

    listener.records = Records()
    listener._reconcile(host.pk, 7)
    [(record, details_then)] = said_done
    assert record == ("reconciled", host.pk, 7, None)
    assert details_then and all(details == {} for details in details_then), "rows written, none described yet"
    assert all(Domain.objects.filter(host=host).values_list("details", flat=True)), "described afterwards"
