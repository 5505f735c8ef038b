"""Fixtures that start the real stack on demand: libvirtd, Redis, Celery workers, the ASGI server,
Chromium. Every process a fixture starts, it stops by pid."""
from __future__ import annotations

import asyncio
import os
import shutil
import uuid
import subprocess
import warnings
from pathlib import Path

import hypothesis
import libvirt
import pytest
import redis
from django.conf import settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase

from scripts.test_guest.build import DEFAULT_CACHE  # the set-up's: the venv, the guest, Node's modules
from tests import databases, stack
from tests.guests import GuestFactory, ScratchPool
from tests.harness.indices import next_index, unclaimed_indices
from tests.harness.libvirt_hosts import HarnessHost, start_host, stop_stale_hosts

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests make
# between page actions are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Every test is fast, slow or integration; `make test` runs them all, `make test-fast` only the fast.
# Integration: marked so (or browser), or asks, directly or through other fixtures, for one of
# these, which start or reach a daemon. Slow: marked so, or a hypothesis test (fuzzing).
DAEMON_FIXTURES = {
    "redis_ready", "local_libvirt", "celery_worker", "harness", "listener", "asgi_server", "chromium", "page",
    "guests", "scratch_pool", "console_proxy",
}
FAST = os.environ.get("VMSITE_TEST_FAST") == "1"

# Hypothesis's per-example deadline times the machine, not the code: on 2 cores shared by 5 workers an
# example that takes 1 ms alone took 312 ms once and failed the run. Every fuzz test keeps its examples.
hypothesis.settings.register_profile(
    "suite", deadline=None, database=DirectoryBasedExampleDatabase(Path.cwd() / ".hypothesis" / "examples"))
hypothesis.settings.load_profile("suite")  # `make test-fast`: the fast set only; no daemons
# Hypothesis builds its Unicode tables (3-4 s of CPU) and reads every local module's constants once
# per process unless its home folder has them, and a clean clone's .hypothesis never did: every
# worker of every run built them again. They are kept beside the set-up's other caches (the examples
# Hypothesis saves stay in the clone, as before).
if os.access(DEFAULT_CACHE, os.W_OK):
    set_hypothesis_home_dir(DEFAULT_CACHE / f"hypothesis-{hypothesis.__version__}")


def pytest_sessionstart(session):
    """A run killed earlier (Ctrl-C on the controller, a crashed worker) can leave its Celery workers,
    ASGI server and harness hosts running on the addresses and files this run is about to use."""
    if FAST:
        return  # the fast set starts nothing
    controller = session.config.getoption("numprocesses", None) and "PYTEST_XDIST_WORKER" not in os.environ
    if "PYTEST_XDIST_WORKER" not in os.environ:  # once per run, before any worker claims an index
        stop_stale_hosts(unclaimed_indices())
    if not controller:  # each worker's own data folder
        stack.stop_orphans(Path(settings.DATA_DIR))


def pytest_xdist_make_scheduler(config, log):
    """`make test`'s --dist worksteal, its longest files first (tests/scheduling.py)."""
    if config.getvalue("dist") == "worksteal":
        from tests.scheduling import LongestFirstScheduling
        return LongestFirstScheduling(config, log)
    return None


def pytest_sessionfinish(session):
    """pytest-xdist's controller, once every worker has ended: drop the template database, and stop what
    a crashed worker started (its replacement is another gwN and never meets them; they would take the
    next run's messages on that worker's Redis database)."""
    if session.config.getoption("numprocesses", None) and "PYTEST_XDIST_WORKER" not in os.environ:
        from django.db import connection
        from pytest_django.plugin import blocking_manager_key

        with session.config.stash[blocking_manager_key].unblock():
            databases.drop_template(connection)
        databases.forget_runs()
        for worker_data_dir in Path(settings.DATA_DIR).glob("gw*"):
            stack.stop_orphans(worker_data_dir)


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker, django_db_modify_db_settings):
    """pytest-django's, but the workers clone one migrated template (tests/databases.py)."""
    from django.db import connection

    with django_db_blocker.unblock():
        old_name = databases.set_up(connection)
    yield
    with django_db_blocker.unblock():
        try:
            databases.tear_down(connection, old_name)
        except Exception as exc:  # a process of the stack still connected: as pytest-django, a warning
            warnings.warn(f"the test database was not dropped: {exc!r}", pytest.PytestWarning)


def pytest_itemcollected(item):  # each test as it is collected: before -m and pytest-xdist read marks
    if item.get_closest_marker("browser") or DAEMON_FIXTURES & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.integration)
    if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
        item.add_marker(pytest.mark.slow)


def _refuse_in_fast_set(what: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a test of the fast set reached {what}: mark it integration "
                             f"(pytest.mark.integration) or give it one of the daemon fixtures")
    return refuse


@pytest.fixture(autouse=True)
def fast_set_reaches_no_daemon(request, monkeypatch):
    """In `make test-fast`, a test that reaches Redis or a real libvirtd fails with the reason, rather
    than passing there by luck or being left out of both sets."""
    if not FAST or request.node.get_closest_marker("integration"):
        yield
        return
    for name in ("open", "openReadOnly", "openAuth"):
        monkeypatch.setattr(libvirt, name, _test_driver_only(getattr(libvirt, name)))
    monkeypatch.setattr(redis.connection.AbstractConnection, "connect", _refuse_in_fast_set("Redis"))
    yield


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Playwright's sync API (the session's `chromium`) leaves its event loop marked as running in
    this thread between calls. Django's async_to_sync, which the test client uses for an async view
    (a volume download), refuses to run under a running loop, so a test that came after a browser
    test in the same worker failed. A test that does not drive the browser runs, from its first
    fixture to its last teardown, with the mark taken away (asyncio's low-level API for event loop
    implementations), and it is put back after. It must cover the fixtures too: Django keeps its
    database connections per thread, but per context while a loop runs, so a test whose database
    transaction was opened with the mark and whose body ran without it wrote on another connection,
    outside that transaction (its rows stayed for the next tests)."""
    loop = asyncio._get_running_loop()
    if loop is None or "chromium" in item.fixturenames:
        yield
        return
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(loop)


def _test_driver_only(opener):
    def open_test_driver_only(uri=None, *args, **kwargs):
        if not (uri or "").startswith("test://"):
            _refuse_in_fast_set(f"libvirt at {uri}")()
        return opener(uri, *args, **kwargs)
    return open_test_driver_only


@pytest.fixture(scope="session")
def stack_log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack-logs")


@pytest.fixture(scope="session")
def redis_ready() -> redis.Redis:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis at {settings.REDIS_URL} does not answer ({exc}); `make test` starts it")
    client.flushdb()  # the suite's own database (settings_test): stale tasks of an earlier run go
    return client


@pytest.fixture
def login_failures_cleared(redis_ready):
    """The test starts and ends with no failed logins counted (the counts live in Redis)."""
    def clear():
        for key in redis_ready.scan_iter("vmsite:login-failures:*"):
            redis_ready.delete(key)

    clear()
    yield
    clear()


@pytest.fixture(scope="session")
def local_libvirt() -> str:
    uri = settings.LIBVIRT_LOCAL_URI
    try:
        libvirt.open(uri).close()
    except libvirt.libvirtError as exc:
        pytest.fail(f"libvirtd does not answer on {uri} ({exc}); `make test` starts it")
    return uri


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, redis_ready, local_libvirt, stack_log_dir):
    worker = stack.start_worker("worker", log_dir=stack_log_dir)
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def harness(tmp_path_factory):
    """start() gives one more libvirt host (its own libvirtd, sshd, hostname, 127.0.0.N)."""
    started: list[HarnessHost] = []

    def start(**options) -> HarnessHost:  # on an address this process claimed (tests/harness/indices.py)
        host = start_host(next_index(), tmp_path_factory.mktemp("harness"), **options)
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


@pytest.fixture
def listener(django_db_setup, tmp_path):
    """The event listener process (manage.py listen), with the test settings and database; its log
    in the test's own folder, kept after a failure."""
    process = stack.start_process("listener", [str(stack.VENV_BIN / "python"), "manage.py", "listen"],
                                  log_dir=tmp_path, env=stack.stack_env())
    yield process
    process.stop()


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, redis_ready, stack_log_dir) -> str:
    server, url = stack.start_asgi_server(log_dir=stack_log_dir)
    yield url
    server.stop()


@pytest.fixture(scope="session")
def console_proxy(django_db_setup, redis_ready, stack_log_dir) -> int:
    """The VNC console proxy on settings.CONSOLE_PROXY_PORT (the console tests and the doctor's)."""
    proxy, port = stack.start_console_proxy(log_dir=stack_log_dir)
    yield port
    proxy.stop()


# Debian's build of Chromium's headless shell (what Playwright runs headless by default): the same
# engine without the full browser's window layers; the browser tests took 27 % less CPU with it than
# with /usr/bin/chromium --headless (21.0 s against 28.9 s for two files of live pages).
HEADLESS_CHROMIUM = "/usr/bin/chromium-headless-shell"


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=HEADLESS_CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, stack_log_dir, request):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    call = getattr(request.node, "report_call", None)
    if call is None or call.failed:  # what the page showed when the test failed (a screenshot costs CPU)
        page.screenshot(path=str(stack_log_dir / f"{request.node.name}.png"))
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the test item (report_setup, report_call, report_teardown), for fixtures
    that act on the outcome."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def guests():
    factory = GuestFactory()
    yield factory
    factory.cleanup()


def virsh(uri: str, *args: str) -> str:
    return subprocess.run(["virsh", "-c", uri, *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def scratch_pool(local_libvirt):
    """A transient dir pool on the main host, in a folder of its own that qemu (running as
    libvirt-qemu) can reach: pytest's temporary folders are private to root."""
    folder = Path("/var/lib/libvirt/images") / f"vmsite-test-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, mode=0o755)
    pool = ScratchPool(local_libvirt, str(folder))
    yield pool
    pool.remove()
    shutil.rmtree(folder, ignore_errors=True)
