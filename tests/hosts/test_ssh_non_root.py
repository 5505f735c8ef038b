"""A non-root SSH user on a remote host: the connect operation says which check refused it (the
libvirt socket's permissions, or polkit), and the user connects once the host lets it in, by a
polkit rule (the README's) or by the socket's group. A real harness sshd and libvirtd, and a real
polkitd on the host's own system bus; the user is a system user of this machine (the harness
namespace shares /etc/passwd)."""
import pytest

from hosts.models import Host
from hosts.services import host_connect_enqueue, installation_ssh_key
from operations.choices import OperationState
from operations.models import Operation
from tests import stack
from tests.harness.libvirt_hosts import ensure_unprivileged_user
from tests.hosts.test_registration import connect_result, finished, register

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

USER = "vmsite-ssh-test"
POLKIT_RULE = """polkit.addRule(function(action, subject) {
    if (action.id == "org.libvirt.unix.manage" && subject.user == "%s") {
        return polkit.Result.YES;
    }
});
"""


def connect(host: Host) -> Operation:
    return finished(host_connect_enqueue(host=host, user=None))


def test_it_says_whether_the_socket_or_polkit_refused_a_non_root_ssh_user(celery_worker, admin_client, harness):
    ensure_unprivileged_user(USER)
    remote = harness()
    remote.authorize_ssh_key(installation_ssh_key().public_key)
    remote.set_libvirtd_options({"auth_unix_rw": "none", "unix_sock_rw_perms": "0700"})  # root only
    host = register(admin_client, name="non-root", transport="ssh", address=remote.address, username=USER)
    refused = connect_result(host)
    assert refused.state == OperationState.FAILED
    assert refused.error.startswith("socket permission denied: The SSH user may not use the host's libvirt socket")

    remote.start_polkit()
    remote.set_libvirtd_options({"auth_unix_rw": "polkit", "unix_sock_rw_perms": "0777"})
    refused = connect(host)
    assert refused.state == OperationState.FAILED
    assert refused.error.startswith("permission denied by polkit:") and "org.libvirt.unix.manage" in refused.error
    assert "no polkit agent available" in refused.error  # polkit's own answer: not allowed without asking

    (remote.polkit_rules_dir / "50-vmsite.rules").write_text(POLKIT_RULE % USER)  # polkitd rereads its rules
    stack.wait_until(lambda: connect(host).state == OperationState.SUCCEEDED, timeout=30, interval=0.5,
                     message="the connect allowed by the polkit rule")

    remote.set_libvirtd_options({"auth_unix_rw": "none", "unix_sock_group": USER, "unix_sock_rw_perms": "0770"})
    connected = connect(host)
    assert (connected.state, connected.error) == (OperationState.SUCCEEDED, "")
