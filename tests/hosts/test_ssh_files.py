"""The files a qemu+ssh connection runs on (pinned known_hosts, ssh wrapper): building a URI never
writes them, and connects racing each other and every caller of connect_uri never see them half
written."""
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from hosts.choices import Transport
from hosts.connection import connect_uri, host_ssh_files_ensure, ssh_command_path, ssh_known_hosts_path
from hosts.models import Host
from hosts.services import host_pin_ssh_keys, installation_ssh_key
from virt.connection import close_quietly, open_with_timeout

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_data_dir(settings, tmp_path) -> Path:
    settings.DATA_DIR = tmp_path
    return tmp_path


def ssh_host_row(address: str, host_keys: str = "") -> Host:
    return Host.objects.create(name=f"ssh-{uuid.uuid4().hex[:8]}", transport=Transport.SSH, address=address,
                               username="root", ssh_key=installation_ssh_key(), ssh_host_keys=host_keys)


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(path): (path.stat().st_ino, path.stat().st_mtime_ns) for path in folder.rglob("*")}


def test_it_builds_a_uri_without_writing_any_file(private_data_dir):
    host = ssh_host_row("127.0.0.9", host_keys="127.0.0.9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAb0\n")
    before = files_under(private_data_dir)

    uri = connect_uri(host)

    assert f"command={ssh_command_path(host)}".replace("/", "%2F") in uri
    assert files_under(private_data_dir) == before
    assert not ssh_command_path(host).exists() and not ssh_known_hosts_path(host).exists()


def test_it_writes_the_files_only_when_the_pinned_keys_change(private_data_dir):
    keys = "127.0.0.9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAb0\n"
    host = ssh_host_row("127.0.0.9", host_keys=keys)

    assert host_ssh_files_ensure(host) is True
    assert ssh_known_hosts_path(host).read_text() == keys
    assert os.stat(ssh_known_hosts_path(host)).st_mode & 0o777 == 0o600
    assert os.stat(ssh_command_path(host)).st_mode & 0o777 == 0o700
    written = files_under(private_data_dir)

    assert host_ssh_files_ensure(host) is False
    assert files_under(private_data_dir) == written

    host.ssh_host_keys = keys.replace("Ab0", "Ab1")
    assert host_ssh_files_ensure(host) is True
    assert ssh_known_hosts_path(host).read_text() == host.ssh_host_keys
    assert not [path for path in ssh_known_hosts_path(host).parent.iterdir() if path.name.startswith(".")]


@pytest.mark.integration
def test_it_connects_over_ssh_from_many_threads_while_others_build_uris_and_ensure_files(private_data_dir, harness):
    ssh_host = harness()
    ssh_host.authorize_ssh_key(installation_ssh_key().public_key)
    host = ssh_host_row(ssh_host.address)
    host_pin_ssh_keys(host=host)
    host_ssh_files_ensure(host)
    failures: list[str] = []
    connects = 0
    stop = threading.Event()
    lock = threading.Lock()

    def connect_repeatedly() -> None:
        nonlocal connects
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not stop.is_set():
            try:
                conn = open_with_timeout(connect_uri(host), 20)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                with lock:
                    failures.append(str(exc))
                return
            close_quietly(conn)
            with lock:
                connects += 1
                if connects >= 60:
                    stop.set()

    def build_uris_and_ensure() -> None:
        while not stop.is_set():
            connect_uri(host)
            host_ssh_files_ensure(host)

    threads = [threading.Thread(target=connect_repeatedly) for _ in range(8)]
    threads += [threading.Thread(target=build_uris_and_ensure) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads[:8]:
        thread.join()
    stop.set()
    for thread in threads[8:]:
        thread.join()

    assert failures == []
    assert connects >= 8
