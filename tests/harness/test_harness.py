"""Self-test of the extra-libvirt-host harness (needs root, libvirtd, qemu, sshd)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import libvirt
import pytest

from tests.guests import small_guest_xml
from tests.harness.indices import next_index
from tests.harness.libvirt_hosts import HarnessHost, start_host

GUEST = "harness-guest"

pytestmark = pytest.mark.integration
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors still raise


def main_host_libvirtds() -> set[int]:
    """Running libvirtd processes in our own UTS namespace, i.e. the main host's."""
    own_ns = os.readlink("/proc/self/ns/uts")
    pids = set()
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = open(f"/proc/{name}/comm").read().strip()
            same_ns = os.readlink(f"/proc/{name}/ns/uts") == own_ns
        except OSError:
            continue
        if comm == "libvirtd" and same_ns and running(int(name)):
            pids.add(int(name))
    return pids


def port_open(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((address, port)) == 0


def start_hosts(base) -> list[HarnessHost]:
    started: list[HarnessHost] = []
    try:
        for _ in range(2):
            started.append(start_host(next_index(), base))
    except BaseException:
        for host in started:
            host.stop()
        raise
    return started


def start_guest(host: HarnessHost) -> None:
    conn = libvirt.open(host.tcp_uri)
    try:
        conn.defineXML(small_guest_xml(GUEST, vnc_listen=host.address)).create()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[HarnessHost]]:
    """Two hosts, the first running a guest: started once for the tests of this module (on each
    pytest-xdist worker that runs some of them)."""
    started = start_hosts(tmp_path_factory.mktemp("libvirt-hosts"))
    try:
        start_guest(started[0])
        yield started
    finally:
        for host in started:
            host.stop()


def test_it_gives_each_host_its_own_hostname(hosts: list[HarnessHost]) -> None:
    names = []
    for host in hosts:
        conn = libvirt.open(host.tcp_uri)
        try:
            names.append(conn.getHostname())
        finally:
            conn.close()
    assert names == [f"host{host.index}" for host in hosts]


def test_it_gives_each_host_its_own_uuid(hosts: list[HarnessHost]) -> None:
    uuids = []
    for host in hosts:
        conn = libvirt.open(host.tcp_uri)
        try:
            caps = ET.fromstring(conn.getCapabilities())
        finally:
            conn.close()
        uuids.append(caps.findtext("host/uuid"))
    assert uuids == [host.host_uuid for host in hosts]
    assert len(set(uuids)) == len(uuids)


def test_it_runs_commands_inside_the_host_namespace(hosts: list[HarnessHost]) -> None:
    host = hosts[0]
    assert host.run_in_ns(["hostname"]).stdout.strip() == host.hostname
    conf = host.run_in_ns(["cat", "/etc/libvirt/libvirtd.conf"]).stdout
    assert f'listen_addr = "{host.address}"' in conf
    assert host.virsh("hostname").stdout.strip() == host.hostname


def test_it_keeps_guests_private_to_their_host(hosts: list[HarnessHost]) -> None:
    first, second = hosts
    conn = libvirt.open(first.tcp_uri)
    try:
        dom = conn.lookupByName(GUEST)
        assert dom.isActive()
        graphics = ET.fromstring(dom.XMLDesc()).find("devices/graphics")
        port = int(graphics.get("port"))
        assert graphics.get("listen") == first.address
        assert 5900 + first.index * 100 <= port < 6000 + first.index * 100
    finally:
        conn.close()
    for uri in (second.tcp_uri, "qemu:///system"):
        other = libvirt.open(uri)
        try:
            assert GUEST not in [d.name() for d in other.listAllDomains()]
        finally:
            other.close()


def test_it_answers_over_ssh(hosts: list[HarnessHost]) -> None:
    for host in hosts:
        for uri in (host.ssh_uri_pinned, host.libssh_uri):
            conn = libvirt.open(uri)
            try:
                assert conn.getHostname() == host.hostname
            finally:
                conn.close()


def test_it_restarts_libvirtd_in_the_same_namespaces(hosts: list[HarnessHost]) -> None:
    host = hosts[0]
    old_pid = host.libvirtd_pid()
    host.kill_libvirtd()
    with pytest.raises(libvirt.libvirtError):
        libvirt.open(host.tcp_uri)
    host.start_libvirtd()
    assert host.libvirtd_pid() not in (None, old_pid)
    conn = libvirt.open(host.tcp_uri)
    try:
        assert conn.getHostname() == host.hostname
        assert conn.lookupByName(GUEST).isActive()  # qemu outlived libvirtd
    finally:
        conn.close()


def test_it_stops_hosts_without_leftovers(tmp_path_factory: pytest.TempPathFactory) -> None:
    hosts = start_hosts(tmp_path_factory.mktemp("stopped-hosts"))  # its own: the others' stay up
    start_guest(hosts[0])
    main_libvirtd = main_host_libvirtds()
    qemu_pids = [p for p in hosts[0].running_pids()
                 if open(f"/proc/{p}/comm").read().startswith("qemu")]
    assert qemu_pids, "the guest's qemu should be counted as part of its host"
    for host in hosts:
        pids = host.running_pids()
        host.stop()
        host.stop()  # idempotent
        # Every process the host had is gone. (Its namespace's inode may already belong to another
        # test's new host, so running_pids() is no proof after stop.)
        assert pids and not [p for p in pids if running(p)]
        assert not host.state_dir.exists()
        assert not port_open(host.address, 16509) and not port_open(host.address, 22)
    assert main_libvirtd and main_libvirtd == main_host_libvirtds()


def running(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_it_runs_a_lean_guest_with_no_video_and_no_usb_but_vnc(hosts: list[HarnessHost]) -> None:
    conn = libvirt.open(hosts[1].tcp_uri)
    domain = conn.defineXML(small_guest_xml("harness-lean-guest", vnc_listen=hosts[1].address, lean=True))
    try:
        domain.create()
        devices = ET.fromstring(domain.XMLDesc()).find("devices")
        assert domain.isActive()
        assert [video.find("model").get("type") for video in devices.findall("video")] == ["none"]
        assert [usb.get("model") for usb in devices.findall("controller[@type='usb']")] == ["none"]
        assert devices.find("graphics").get("type") == "vnc"
    finally:
        if domain.isActive():
            domain.destroy()
        domain.undefine()
        conn.close()


def test_stale_host_cleanup_refuses_the_hosts_of_a_run_still_going(tmp_path) -> None:
    """A second pytest run on the same indices (an ad hoc run while the suite runs) stopped the
    suite's hosts at its session start; it now stops with the reason, and a dead owner's host is
    still taken as stale."""
    import json
    import subprocess

    from tests.harness.libvirt_hosts import REGISTRY_DIR, HarnessError, _process_identity, stop_stale_hosts

    index = next_index()
    record_path = REGISTRY_DIR / f"host{index}.json"
    other_run = subprocess.Popen(["sleep", "60"])
    try:
        REGISTRY_DIR.mkdir(mode=0o700, exist_ok=True)
        record_path.write_text(json.dumps({"index": index, "state_dir": str(tmp_path), "host_uuid": "x",
                                           "holder_pid": 0, "uts_ns": None, "pids": [],
                                           "owner": _process_identity(other_run.pid)}))
        with pytest.raises(HarnessError, match=f"harness host {index} belongs to a test run still going"):
            stop_stale_hosts([index])
    finally:
        other_run.kill()
        other_run.wait()
        record_path.unlink(missing_ok=True)


def test_a_hosts_config_copy_leaves_out_the_main_hosts_objects_and_libvirts_half_written_files() -> None:
    """Other tests define and undefine the main host's objects while a harness host copies /etc/libvirt;
    libvirt writes each definition as NAME.new and renames it, so that file may be gone a moment after
    it was listed (a whole run once failed two tests on it)."""
    from tests.harness.libvirt_hosts import PRIVATE_DIRS, _pruned_config
    etc = Path(PRIVATE_DIRS["etc"])
    assert _pruned_config(str(etc / "qemu"), ["vm.xml", "vm.xml.new", "autostart", "networks"]) == {
        "vm.xml", "vm.xml.new"}
    assert _pruned_config(str(etc / "storage"), ["pool.xml.new", "autostart"]) == {"pool.xml.new"}
    assert _pruned_config(str(etc), ["qemu.conf", "libvirtd.conf", "qemu.conf.new"]) == {"qemu.conf.new"}
