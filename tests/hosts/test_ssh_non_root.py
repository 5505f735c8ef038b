"""A non-root SSH user on a remote host: the connect operation says which check refused it (the
libvirt socket's permissions, or polkit), and the user connects once it is in the socket's group.
A real harness sshd and libvirtd; the user is a system user of this machine (the harness namespace
shares /etc/passwd). Polkit itself cannot run here (no system bus), so the polkit case is libvirtd
asking polkit and getting no answer, which the operation reports as a polkit refusal."""
import pytest

from hosts.services import host_connect_enqueue, installation_ssh_key
from operations.choices import OperationState
from tests.harness.libvirt_hosts import ensure_unprivileged_user
from tests.hosts.test_registration import connect_result, finished, register

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

USER = "vmsite-ssh-test"


def test_it_says_whether_the_socket_or_polkit_refused_a_non_root_ssh_user(celery_worker, admin_client, harness):
    ensure_unprivileged_user(USER)
    remote = harness()
    remote.authorize_ssh_key(installation_ssh_key().public_key)
    remote.set_libvirtd_options({"auth_unix_rw": "none", "unix_sock_rw_perms": "0700"})  # root only
    host = register(admin_client, name="non-root", transport="ssh", address=remote.address, username=USER)
    refused = connect_result(host)
    assert refused.state == OperationState.FAILED
    assert refused.error.startswith("socket permission denied: The SSH user may not use the host's libvirt socket")

    remote.set_libvirtd_options({"auth_unix_rw": "polkit", "unix_sock_rw_perms": "0777"})
    refused = finished(host_connect_enqueue(host=host, user=None))
    assert refused.state == OperationState.FAILED
    assert refused.error.startswith("permission denied by polkit:") and "org.libvirt.unix.manage" in refused.error

    remote.set_libvirtd_options({"auth_unix_rw": "none", "unix_sock_group": USER, "unix_sock_rw_perms": "0770"})
    connected = finished(host_connect_enqueue(host=host, user=None))
    assert (connected.state, connected.error) == (OperationState.SUCCEEDED, "")
