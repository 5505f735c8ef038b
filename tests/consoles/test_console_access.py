"""Who gets a console token, what it is bound to, when an open console must close, which Origins
the proxy accepts, and the .vv file: database, Redis and views, no libvirt needed."""
import asyncio
import json
import struct
import uuid
import zlib

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from uvicorn.protocols.utils import ClientDisconnected

from accounts.models import AuditAction, AuditEvent
from consoles.consumers import ConsoleConsumer, ScreenshotConsumer, SerialConsoleConsumer
from consoles.proxy import origin_allowed
from consoles.selectors import grant_revoked_reason
from consoles.tokens import KEY_PREFIX, ConsoleGrant, hash_secret, token_store, token_take
from domains.choices import DomainState
from domains.models import Domain
from hosts.models import Host
from operations.choices import OperationState
from operations.models import Operation
from accounts.models import Grant, Role
from tests.stack import in_own_loop
from tests.consoles.conftest import grant_hosts, logged_in, make_user, take_console_right
from virt.consoles import ppm_to_png

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_tokens(redis_ready):
    """Each test counts its own tokens: those of earlier tests go."""
    for key in redis_ready.scan_iter(f"{KEY_PREFIX}*"):
        redis_ready.delete(key)


@pytest.fixture
def host():
    return Host.objects.create(name="kvm1", transport="tcp", address="127.0.0.1")


def make_domain(host: Host, *, state: int = DomainState.RUNNING, graphics=None) -> Domain:
    return Domain.objects.create(host=host, uuid=uuid.uuid4(), name=f"vm-{uuid.uuid4().hex[:6]}", state=state,
                                 synced_at=timezone.now(),
                                 details={"graphics": graphics if graphics is not None else
                                          [{"type": "vnc", "listen": "127.0.0.1", "port": 5901}]})


def test_it_issues_a_one_use_token_bound_to_the_user_session_vm_and_host(host, alice, redis_ready):
    domain = make_domain(host)
    browser = logged_in(alice)
    token = browser.token(domain)
    assert len(token) >= 43  # 256 bits in URL-safe base64
    keys = list(redis_ready.scan_iter(f"{KEY_PREFIX}*"))
    assert keys == [f"{KEY_PREFIX}{hash_secret(token)}".encode()]
    stored = json.loads(redis_ready.get(keys[0]))
    assert token not in json.dumps(stored) and browser.session_key not in json.dumps(stored)
    assert stored == {"user_id": alice.pk, "session_hash": hash_secret(browser.session_key), "domain_id": domain.pk,
                      "domain_uuid": str(domain.uuid), "host_id": host.pk, "graphics": "vnc"}
    assert 28 <= redis_ready.ttl(keys[0]) <= 30
    assert token_take(token).domain_id == domain.pk
    assert token_take(token) is None  # GETDEL: once only
    assert token_take("") is None and token_take("x" * 500) is None
    opened = AuditEvent.objects.get(action=AuditAction.CONSOLE_OPENED)
    assert (opened.username, opened.target, opened.detail) == (alice.username, f"{domain.name} on kvm1", "VNC")
    assert token not in opened.target + opened.detail


def test_each_token_is_new(host, alice, redis_ready):
    domain = make_domain(host)
    browser = logged_in(alice)
    assert len({browser.token(domain) for _ in range(20)}) == 20


def test_it_refuses_a_token_to_a_user_without_the_console_right(host, redis_ready):
    domain = make_domain(host)
    browser = logged_in(make_user("carol", console=False))
    response = browser.client.post(reverse("consoles:token", args=[domain.pk]))
    assert response.status_code == 403
    assert browser.client.get(reverse("consoles:vnc", args=[domain.pk])).status_code == 403
    assert not list(redis_ready.scan_iter(f"{KEY_PREFIX}*"))


def test_it_refuses_a_token_to_an_anonymous_visitor_and_by_get(host, alice, redis_ready):
    domain = make_domain(host)
    response = Client().post(reverse("consoles:token", args=[domain.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert logged_in(alice).client.get(reverse("consoles:token", args=[domain.pk])).status_code == 405


def test_it_checks_csrf_on_the_token_request(host, alice, redis_ready):
    domain = make_domain(host)
    client = Client(enforce_csrf_checks=True)
    client.login(username="alice", password="correct horse battery staple")
    assert client.post(reverse("consoles:token", args=[domain.pk])).status_code == 403


@pytest.mark.parametrize("state,graphics,transport,message", [
    (DomainState.SHUTOFF, None, "tcp", "is shut off: start it to open its console"),
    (DomainState.RUNNING, [{"type": "spice", "listen": "127.0.0.1", "port": 5901}], "tcp", "has no VNC display"),
    (DomainState.RUNNING, None, "test", "test driver have no consoles"),
])
def test_it_says_why_a_console_cannot_open(host, alice, redis_ready, state, graphics, transport, message):
    Host.objects.filter(pk=host.pk).update(transport=transport)
    domain = make_domain(host, state=state, graphics=graphics)
    browser = logged_in(alice)
    response = browser.client.post(reverse("consoles:token", args=[domain.pk]))
    assert response.status_code == 409 and message in response.json()["error"]
    page = browser.client.get(reverse("consoles:vnc", args=[domain.pk])).content.decode()
    assert message in page
    assert not list(redis_ready.scan_iter(f"{KEY_PREFIX}*"))


def test_the_console_page_names_no_host_port_or_password(host, alice):
    domain = make_domain(host, graphics=[{"type": "vnc", "listen": "127.0.0.1", "port": 5977}])
    page = logged_in(alice).client.get(reverse("consoles:vnc", args=[domain.pk])).content.decode()
    assert "5977" not in page and "passwd" not in page
    assert 'data-token-url="/vms/%d/console/token/"' % domain.pk in page


def test_the_vm_pages_offer_the_console_only_with_the_right(host, alice):
    domain = make_domain(host)
    with_right = logged_in(alice).client
    without = logged_in(make_user("dave", console=False)).client
    for url in (reverse("domains:detail", args=[domain.pk]), reverse("domains:list")):
        assert reverse("consoles:vnc", args=[domain.pk]) in with_right.get(url).content.decode()
        assert reverse("consoles:vnc", args=[domain.pk]) not in without.get(url).content.decode()


def grant_for(browser, domain: Domain) -> ConsoleGrant:
    return ConsoleGrant(user_id=int(browser.client.session["_auth_user_id"]),
                        session_hash=hash_secret(browser.session_key), domain_id=domain.pk,
                        domain_uuid=str(domain.uuid), host_id=domain.host_id, graphics="vnc")


def test_an_open_console_may_stay_while_its_grant_holds(host, alice):
    domain = make_domain(host)
    browser = logged_in(alice)
    assert grant_revoked_reason(grant_for(browser, domain), browser.session_key) is None


def test_an_open_console_closes_when_the_vm_goes_or_moves(host, alice):
    domain = make_domain(host)
    browser = logged_in(alice)
    grant = grant_for(browser, domain)
    other = Host.objects.create(name="kvm2", transport="tcp", address="127.0.0.2")
    Domain.objects.filter(pk=domain.pk).update(host=other)
    assert grant_revoked_reason(grant, browser.session_key) == "the VM moved to another host"
    Domain.objects.filter(pk=domain.pk).delete()
    assert grant_revoked_reason(grant, browser.session_key) == "the VM was deleted"


def test_an_open_console_closes_when_the_user_loses_the_right(host, alice):
    domain = make_domain(host)
    browser = logged_in(alice)
    grant = grant_for(browser, domain)
    take_console_right(alice)
    assert grant_revoked_reason(grant, browser.session_key) == "you no longer have the right to open this console"
    grant_hosts(alice)
    Grant.objects.filter(user=alice).update(role=Role.OPERATOR)
    alice.is_active = False
    alice.save()
    assert grant_revoked_reason(grant, browser.session_key) == "your account is disabled"


@pytest.mark.django_db(transaction=True)  # the consumer reads the grant on a thread of its own
def test_a_console_whose_page_went_away_as_its_grant_ended_stops_quietly(host, alice, settings):
    """The re-check finds the VM gone and tells the page, which has just gone too: the server's send
    raises (an OSError, as ASGI asks). The check ends there; before, its task died with the error
    ("Task exception was never retrieved" in the web server's log)."""
    settings.CONSOLE_RECHECK_INTERVAL = 0
    domain = make_domain(host)
    browser = logged_in(alice)
    consumer = ConsoleConsumer()
    consumer.grant, consumer.session_key = grant_for(browser, domain), browser.session_key
    Domain.objects.filter(pk=domain.pk).delete()

    consumer.send = consumer.close = _page_gone
    in_own_loop(asyncio.wait_for(consumer._watch(), timeout=10))

async def _page_gone(*args, **kwargs) -> None:
    raise ClientDisconnected()


@pytest.mark.django_db(transaction=True)  # the consumers read the database on threads of their own
def test_a_console_whose_page_went_away_ends_its_tasks_quietly(host, alice):
    """Each task of a console session that sends to a page which has just gone ends there: the serial
    console's end (the VM stopped), its output, the screenshots of a VM that went off. Before, each
    task died with the server's error ("Task exception was never retrieved" in the web server's log,
    seen in a whole run)."""
    domain = make_domain(host, state=DomainState.SHUTOFF)
    browser = logged_in(alice)

    async def each_task_with_the_page_gone() -> None:
        serial = SerialConsoleConsumer()
        serial.grant = grant_for(browser, domain)
        serial.channel_name = "this-page"
        serial.holder_key = f"vmsite:serial-console-holder:test-{uuid.uuid4().hex}"  # nobody took it over
        serial.send = serial.close = _page_gone
        serial.output = asyncio.Queue()
        serial.output.put_nowait(b"login: ")
        try:
            await asyncio.wait_for(serial._stream_ended("the VM stopped"), timeout=10)
            await asyncio.wait_for(serial._send_output(), timeout=10)
        finally:
            await serial.redis().aclose()
        screenshots = ScreenshotConsumer()
        screenshots.send = _page_gone
        await asyncio.wait_for(screenshots._send_screenshots(domain.pk), timeout=10)

    in_own_loop(each_task_with_the_page_gone())


def test_an_open_console_closes_on_logout_or_password_change(host, alice):
    domain = make_domain(host)
    browser = logged_in(alice)
    grant = grant_for(browser, domain)
    alice.set_password("another long passphrase")
    alice.save()
    assert grant_revoked_reason(grant, browser.session_key) == "you are logged out"
    assert grant_revoked_reason(grant, "no-such-session") == "you are logged out"


@pytest.mark.parametrize("origin,allowed", [
    ("http://127.0.0.1:8000", True), ("http://localhost:8000", True), ("http://localhost", False),
    ("https://127.0.0.1", False), ("https://127.0.0.1:8000", False), ("http://127.0.0.1:8001", False),
    ("http://evil.example.org", False), ("http://127.0.0.1.evil.example.org", False), ("null", False),
    ("", False), (None, False), ("file://", False), ("javascript:alert(1)", False),
])
@override_settings(SITE_ORIGINS=["http://127.0.0.1:8000", "http://localhost:8000"])
def test_the_proxy_accepts_only_the_sites_own_origins(origin, allowed):
    assert origin_allowed(origin) is allowed


@override_settings(SITE_ORIGINS=["https://vmsite.example.org"], CSRF_TRUSTED_ORIGINS=["https://proxy.example.org"])
def test_the_proxy_follows_site_and_trusted_origins():
    assert origin_allowed("https://vmsite.example.org")
    assert origin_allowed("https://proxy.example.org")
    assert not origin_allowed("http://127.0.0.1:8000")


def test_the_spice_file_names_the_display_and_never_a_password(host, alice):
    domain = make_domain(host, graphics=[{"type": "spice", "listen": "0.0.0.0", "port": 5930}])
    response = logged_in(alice).client.get(reverse("consoles:spice", args=[domain.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/x-virt-viewer"
    body = response.content.decode()
    assert body.startswith("[virt-viewer]\ntype=spice\nhost=127.0.0.1\nport=5930\n")
    assert "password" not in body
    denied = logged_in(make_user("erin", console=False)).client.get(reverse("consoles:spice", args=[domain.pk]))
    assert denied.status_code == 403


def test_the_spice_file_says_when_it_cannot_help(host, alice):
    no_port = make_domain(host, graphics=[{"type": "spice", "listen": "127.0.0.1", "port": -1}])
    vnc_only = make_domain(host)
    client = logged_in(alice).client
    response = client.get(reverse("consoles:spice", args=[no_port.pk]))
    assert response.status_code == 409 and "port is not known" in response.content.decode()
    assert "no SPICE display" in client.get(reverse("consoles:spice", args=[vnc_only.pk])).content.decode()


def test_a_ppm_screenshot_becomes_a_png():
    pixels = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255])
    png = ppm_to_png(b"P6\n# qemu\n2 2\n255\n" + pixels)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (2, 2)
    idat = png.index(b"IDAT")
    length = struct.unpack(">I", png[idat - 4:idat])[0]
    assert zlib.decompress(png[idat + 4:idat + 4 + length]) == b"\x00" + pixels[:6] + b"\x00" + pixels[6:]


def test_a_token_store_never_overwrites(redis_ready):
    grant = ConsoleGrant(user_id=1, session_hash="x", domain_id=1, domain_uuid="u", host_id=1, graphics="vnc")
    tokens = {token_store(grant) for _ in range(5)}
    assert len(tokens) == 5 and len(list(redis_ready.scan_iter(f"{KEY_PREFIX}*"))) == 5


def test_the_serial_page_says_when_the_vm_is_off_and_needs_the_right(host, alice):
    off = make_domain(host, state=DomainState.SHUTOFF)
    page = logged_in(alice).client.get(reverse("consoles:serial", args=[off.pk])).content.decode()
    assert "is shut off: start it to open its console" in page and 'data-unavailable="' in page
    running = make_domain(host)
    assert 'data-unavailable=""' in logged_in(alice).client.get(reverse("consoles:serial", args=[running.pk])
                                                                ).content.decode()
    denied = logged_in(make_user("gina", console=False)).client.get(reverse("consoles:serial", args=[running.pk]))
    assert denied.status_code == 403


SITE_POLICY = ("default-src 'self'; script-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
               "object-src 'none'")


@override_settings(CONTENT_SECURITY_POLICY=SITE_POLICY, CONSOLE_PROXY_PORT=6099)
def test_the_console_page_may_connect_to_the_proxy_and_nowhere_else(host, alice):
    domain = make_domain(host)
    response = logged_in(alice).client.get(reverse("consoles:vnc", args=[domain.pk]), HTTP_HOST="127.0.0.1:8000")
    assert response["Content-Security-Policy"] == SITE_POLICY.replace(
        "connect-src 'self'", "connect-src 'self' ws://127.0.0.1:6099")


@override_settings(CONTENT_SECURITY_POLICY="default-src 'self'", CONSOLE_PROXY_URL="wss://vmsite.example.org/vnc",
                   ALLOWED_HOSTS=["vmsite.example.org"])
def test_the_console_page_policy_names_a_configured_proxy_url(host, alice):
    domain = make_domain(host)
    response = logged_in(alice).client.get(reverse("consoles:vnc", args=[domain.pk]), HTTP_HOST="vmsite.example.org")
    assert response["Content-Security-Policy"] == "default-src 'self'; connect-src 'self' wss://vmsite.example.org"
    assert 'data-proxy-url="wss://vmsite.example.org/vnc"' in response.content.decode()


@override_settings(CONTENT_SECURITY_POLICY="")
def test_without_a_site_policy_the_console_page_sets_none(host, alice):
    domain = make_domain(host)
    response = logged_in(alice).client.get(reverse("consoles:vnc", args=[domain.pk]))
    assert "Content-Security-Policy" not in response


@override_settings(CONTENT_SECURITY_POLICY="default-src 'self'", CONSOLE_PROXY_URL="/websockify",
                   ALLOWED_HOSTS=["vmsite.example.org"])
def test_a_proxy_path_puts_the_console_on_the_pages_own_origin(host, alice):
    """Behind nginx (deploy/): the proxy is a path of the site, so the socket goes to the page's own
    origin, port included, and the page builds the URL from where it was loaded."""
    domain = make_domain(host)
    response = logged_in(alice).client.get(reverse("consoles:vnc", args=[domain.pk]),
                                           HTTP_HOST="vmsite.example.org:8443", secure=True)
    assert response["Content-Security-Policy"] == "default-src 'self'; connect-src 'self' wss://vmsite.example.org:8443"
    assert 'data-proxy-url="/websockify"' in response.content.decode()


def test_the_vm_page_asks_for_no_screenshots_while_the_vm_is_being_deleted(host, admin_client):
    """The page a delete goes back to opened the screenshot socket just as the row went: a refused socket,
    an error in the browser's console (seen in test_an_admins_day)."""
    domain = make_domain(host)
    page = reverse("domains:detail", args=[domain.pk])
    assert 'id="domain-screenshot"' in admin_client.get(page).content.decode()
    Operation.objects.create(kind="domain.delete", target_type="domain", target_id=domain.pk, target_label=domain.name,
                             host=host, state=OperationState.PENDING)
    html = admin_client.get(page).content.decode()
    assert 'id="domain-screenshot"' not in html and "screenshot.js" not in html
    assert 'data-action="console"' in html  # the rest of the panel stays
