"""Row 10 of issue 14: a websocket is opened only by a page of the site, the whole origin (scheme,
host and port) compared, for every socket of the ASGI server and for the VNC console proxy; one
function decides (vmsite.origins.origin_allowed). A page on another port or scheme of the same host
is another site."""
from __future__ import annotations

import pytest
from django.test import override_settings
from websockify import auth_plugins

from consoles.proxy import OriginCheck
from vmsite.origins import normalise, origin_allowed, request_origin, scope_origin

OWN = "http://127.0.0.1:8000"


@pytest.fixture(autouse=True)
def site_origins(settings):
    """The settings' default for ALLOWED_HOSTS 127.0.0.1 and localhost on VMSITE_PORT 8000."""
    settings.SITE_ORIGINS = [OWN, "http://localhost:8000"]


@pytest.mark.parametrize("origin,allowed", [
    (OWN, True), ("http://127.0.0.1:8000/", True), ("HTTP://127.0.0.1:8000", True),
    ("http://127.0.0.1:8001", False), ("http://127.0.0.1:80", False), ("http://127.0.0.1", False),
    ("https://127.0.0.1:8000", False), ("ws://127.0.0.1:8000", False), ("http://localhost:9000", False),
    ("http://127.0.0.1:8000@evil.example", False), ("http://user@127.0.0.1:8000", False),
    ("http://127.0.0.1:8000/page", False), ("http://127.0.0.1:99999", False), ("null", False), (None, False),
])
def test_it_compares_the_whole_origin(origin, allowed):
    assert origin_allowed(origin) is allowed


def test_it_writes_default_ports_out():
    assert normalise("https://vmsite.example.org") == normalise("https://vmsite.example.org:443")
    assert normalise("http://[::1]") == "http://[::1]:80"
    assert normalise("http://vmsite.example.org:443") != normalise("https://vmsite.example.org")


@override_settings(SITE_ORIGINS=[], CSRF_TRUSTED_ORIGINS=["https://vmsite.example.org", "https://*.corp.example"])
def test_it_takes_a_reverse_proxys_public_origin_from_the_settings():
    assert origin_allowed("https://vmsite.example.org") and origin_allowed("https://vmsite.example.org:443")
    assert not origin_allowed("http://vmsite.example.org") and not origin_allowed("https://vmsite.example.org:8443")
    assert origin_allowed("https://vm.corp.example") and not origin_allowed("https://corp.example")
    assert not origin_allowed("http://vm.corp.example") and not origin_allowed("https://vm.corp.example:444")
    assert not origin_allowed("https://evilcorp.example") and not origin_allowed(OWN)


@override_settings(SITE_ORIGINS=[], CSRF_TRUSTED_ORIGINS=[], ALLOWED_HOSTS=["vmsite.example.org"],
                   SECURE_PROXY_SSL_HEADER=None)
def test_a_socket_of_the_page_server_also_takes_the_requests_own_origin():
    own = request_origin(secure=False, host="vmsite.example.org:8080")
    assert origin_allowed("http://vmsite.example.org:8080", own=own)
    assert not origin_allowed("http://vmsite.example.org:8081", own=own)
    assert not origin_allowed("https://vmsite.example.org:8080", own=own)
    assert request_origin(secure=False, host="rebound.evil.example:8080") is None  # not an allowed host
    headers = [(b"host", b"vmsite.example.org"), (b"x-forwarded-proto", b"https")]
    assert scope_origin({"scheme": "ws", "headers": headers}) == "http://vmsite.example.org:80"  # not trusted
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        assert scope_origin({"scheme": "ws", "headers": headers}) == "https://vmsite.example.org:443"
    assert scope_origin({"scheme": "wss", "headers": headers[:1]}) == "https://vmsite.example.org:443"


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8001", "https://127.0.0.1:8000", "http://127.0.0.1"])
def test_the_console_proxy_refuses_a_page_on_another_port_or_scheme(origin):
    with pytest.raises(auth_plugins.InvalidOriginError):
        OriginCheck(None).authenticate(headers={"Origin": origin}, target_host=None, target_port=None)
    OriginCheck(None).authenticate(headers={"Origin": OWN}, target_host=None, target_port=None)
