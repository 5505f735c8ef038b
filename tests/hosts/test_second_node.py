"""A second node: another machine's worker and listener, simulated here. It has its own data folder
and sees nothing of the first node's (an empty mount covers that folder in the second node's mount
namespace; only a SQLite test database file stays, standing in for the shared database server).
It shares the database, Redis and the key-encryption key (SECRET_BOX_KEY in its environment), and
with those alone reaches an SSH host and a TLS host: credentials come from the store, not files."""
import base64
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

import libvirt
import pytest
from django.conf import settings
from django.db import connection

from domains.models import Domain
from domains.services import domain_action_enqueue
from hosts.models import Host
from hosts.services import host_create, host_pin_ssh_keys, installation_ssh_key
from inventory.reconcile import host_reconcile
from operations.choices import OperationState
from operations.models import Operation
from tests import stack
from tests.hosts.test_registration import finished

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUE = "second-node"


def hiding_first_node(argv: list[str]) -> list[str]:
    """argv run in a mount namespace where the first node's data folder is empty: an empty tmpfs over
    it, or, with a SQLite test database in it, over each of its entries but that database (whose
    journal files come and go beside it, so the folder itself stays shared)."""
    folder = settings.DATA_DIR
    database = Path(connection.settings_dict["NAME"]) if connection.vendor == "sqlite" else None
    if database is None or database.parent != folder:
        mounts = [f"mount -t tmpfs -o mode=0700 none {shlex.quote(str(folder))}"]
    else:
        for name in ("credentials", "hosts", "ssh"):  # made later by the first node: cover them now
            (folder / name).mkdir(mode=0o700, exist_ok=True)
        mounts = [f"mount {'-t tmpfs -o mode=0700 none' if entry.is_dir() else '--bind /dev/null'} "
                  f"{shlex.quote(str(entry))}"
                  for entry in sorted(folder.iterdir()) if not entry.name.startswith(database.name)]
    script = "set -e\n" + "\n".join(mounts) + "\nexec " + shlex.join(argv)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def second_node_env(data_dir: Path) -> dict[str, str]:
    kek = ",".join(base64.urlsafe_b64encode(key.secret).decode() for key in settings.SECRET_BOX_KEYS)
    return stack.stack_env(VMSITE_DATA_DIR=str(data_dir), VMSITE_SUITE_VMSITE_DATA_DIR=str(data_dir),
                           SECRET_BOX_KEY=kek, SECRET_KEY=settings.SECRET_KEY, OPERATIONS_QUEUE=QUEUE)


@pytest.fixture
def second_node(stack_log_dir, redis_ready):
    data_dir = Path(tempfile.mkdtemp(prefix="vmsite-node2-"))
    env = second_node_env(data_dir)
    worker_argv = [str(stack.VENV_BIN / "celery"), "-A", "vmsite", "worker", "--loglevel", "INFO", "--concurrency",
                   "1", "--hostname", "node2@%h", "--queues", QUEUE, "--without-gossip", "--without-mingle"]
    worker = stack.start_process("node2-worker", hiding_first_node(worker_argv), log_dir=stack_log_dir, env=env)
    listener = stack.start_process("node2-listener", hiding_first_node(
        [str(stack.VENV_BIN / "python"), "manage.py", "listen"]), log_dir=stack_log_dir, env=env)
    try:
        stack.wait_until(lambda: "ready." in worker.log() or worker.process.poll() is not None, timeout=60,
                         message="the second node's worker")
        assert worker.process.poll() is None, worker.log()[-3000:]
        worker_dir = os.environ.get("PYTEST_XDIST_WORKER", "")  # vmsite/settings_test.py adds it
        yield data_dir / worker_dir, worker, listener
    finally:
        listener.stop()
        worker.stop()
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)


def test_a_second_node_with_only_the_database_redis_and_the_key_reaches_ssh_and_tls_hosts(
        second_node, harness, guests, settings):
    data_dir, worker, listener = second_node
    settings.OPERATIONS_QUEUE = QUEUE  # every operation queued here goes to the second node's worker
    remote = harness(tls=True)
    remote.authorize_ssh_key(installation_ssh_key().public_key)
    pki = remote.pki
    ssh, _ = host_create(user=None, name="n2-ssh", transport="ssh", address=remote.address, username="root",
                         enabled=True)
    host_pin_ssh_keys(host=ssh)
    tls, _ = host_create(user=None, name="n2-tls", transport="tls", address=remote.address, enabled=True,
                         tls_files={"cacert.pem": pki.ca_pem, "clientcert.pem": pki.client_cert_pem,
                                    "clientkey.pem": pki.client_key_pem})
    guest = guests.define(remote.tcp_uri, vnc_listen=remote.address)
    connects = [finished(Operation.objects.filter(host=host, kind="host.connect").latest("created_at"))
                for host in (ssh, tls)]
    assert [(op.state, op.error) for op in connects] == [(OperationState.SUCCEEDED, "")] * 2
    assert {op.worker.partition("@")[0] for op in connects} == {"node2"}

    host_reconcile(host=tls)
    start = finished(domain_action_enqueue(domain=Domain.objects.get(host=tls, uuid=guest.UUIDString()),
                                           action="start", user=None), timeout=60)
    assert (start.state, start.error, start.worker.partition("@")[0]) == (OperationState.SUCCEEDED, "", "node2")
    assert libvirt.open(remote.tcp_uri).lookupByUUIDString(guest.UUIDString()).isActive()

    stack.wait_until(lambda: all(f"host {host.pk} connected" in listener.log() for host in (ssh, tls)), timeout=60,
                     message=f"the second node's listener watching both hosts:\n{listener.log()[-2000:]}")

    def key_files() -> list[Path]:
        return [path for path in data_dir.rglob("*") if path.is_file() and b"PRIVATE KEY" in _bytes(path)]

    # Opened, used, removed: the listener's reconcile may be opening its own connection just now.
    stack.wait_until(lambda: not key_files(), timeout=30, message="the second node's key files removed")
    assert (data_dir / "hosts" / str(ssh.pk) / "known_hosts").read_text() == Host.objects.get(pk=ssh.pk).ssh_host_keys


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:  # removed between the listing and the read
        return b""
