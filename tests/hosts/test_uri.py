"""URIs are assembled from validated parts and never carry a query string a user wrote."""
import pytest
from django.core.exceptions import ValidationError

from hosts.uri import build_uri, validate_address
from virt.errors import describe_connect_failure


@pytest.mark.parametrize("transport, address, port, user, expected", [
    ("local", "", None, "", "qemu:///system"),
    ("ssh", "kvm1.example.org", None, "root", "qemu+ssh://root@kvm1.example.org/system"),
    ("ssh", "10.0.0.5", 2222, "admin", "qemu+ssh://admin@10.0.0.5:2222/system"),
    ("tls", "KVM2.example.org", 16514, "", "qemu+tls://kvm2.example.org:16514/system"),
    ("tcp", "fe80::1", None, "", "qemu+tcp://[fe80::1]/system"),
    ("test", "default", None, "", "test:///default"),
    ("test", "/srv/demo.xml", None, "", "test:///srv/demo.xml"),
])
def test_it_builds_uris_from_parts(transport, address, port, user, expected):
    assert build_uri(transport=transport, address=address, port=port, user=user) == expected


@pytest.mark.parametrize("address", ["h?command=/tmp/x", "h&netcat=x", "h#x", "h/x", "-h", "h..x", ".", "h x", "h\tx"])
def test_it_never_puts_user_text_with_uri_syntax_into_a_uri(address):
    with pytest.raises(ValidationError):
        build_uri(transport="ssh", address=address)


def test_it_rejects_an_unknown_transport():
    with pytest.raises(ValidationError):
        build_uri(transport="ftp", address="x")


def test_it_normalises_addresses():
    assert validate_address(" KVM1.Example.org ") == "kvm1.example.org"
    assert validate_address("0:0::1") == "::1"


@pytest.mark.parametrize("message, reason", [
    ("Cannot recv data: @@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@", "host key changed"),
    ("ssh: Could not resolve hostname kvm9: Name or service not known", "name does not resolve"),
    ("unable to connect to server at 'kvm1:16509': Connection refused", "refused"),
    ("Connection timed out after 20 s", "timeout"),
    ("root@127.0.0.5: Permission denied (publickey).", "auth failed"),
    ("authentication failed: TLS handshake failed The TLS connection was non-properly terminated.", "TLS failed"),
    ("authentication unavailable: no polkit agent available to authenticate action", "permission denied by polkit"),
    ("something else entirely", "unavailable"),
])
def test_it_names_the_reason_a_connect_failed(message, reason):
    assert describe_connect_failure(message)[0] == reason
