"""Hostile input through every form of hosts, VMs, pools, volumes, networks and users: never a 500,
and a refused post changes nothing in the database.

Posts go through the real views with the Django test client, as an administrator, against one
host on libvirt's test driver (a private node file, read by a real reconcile). Each example runs
inside a savepoint that is rolled back, so every example sees the same world and an accepted post
(an operation queued, never run: no worker here) cannot change what the next one meets.
"""
from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import libvirt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domains.models import Domain
from domains.sync import domain_snapshots_store, domain_xml_store
from hosts.choices import HostStatus
from hosts.models import Host
from hosts.uri import build_uri, validate_address
from inventory.reconcile import host_reconcile
from networking.models import NetworkFilter, VirtualNetwork
from storage.models import StoragePool, Volume
from tests.security.hostile_input import MISSING, hostile_text, ids, posts
from tests.security.test_urlconf import row_counts
from virt.connection import pool as connection_pool
from virt.snapshots import SnapshotInfo

pytestmark = pytest.mark.django_db

# Derandomized: CI runs the same examples every time. VMSITE_FUZZ_SCALE=20 hunts longer by hand.
SCALE = int(os.environ.get("VMSITE_FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=35 * SCALE, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
FEW = settings(FUZZ, max_examples=16 * SCALE)


def examples(count: int) -> settings:
    return settings(FUZZ, max_examples=count * SCALE)

NODE_XML = textwrap.dedent("""\
    <node>
      <cpu><mhz>2400</mhz><model>i686</model><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>2</threads></cpu>
      <memory>8388608</memory>
      <domain type='test'>
        <name>running</name>
        <uuid>6695eb01-f6a4-8304-79aa-97f2502e0001</uuid>
        <memory unit='MiB'>512</memory>
        <vcpu current='1'>4</vcpu>
        <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
        <devices>
          <disk type='file' device='disk'>
            <driver name='qemu' type='qcow2'/>
            <source file='/var/lib/libvirt/images/root.qcow2'/>
            <target dev='vda' bus='virtio'/>
          </disk>
          <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>
          <interface type='network'>
            <mac address='52:54:00:aa:00:01'/>
            <source network='fuzznet'/>
            <model type='virtio'/>
          </interface>
        </devices>
      </domain>
      <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
        <name>idle</name>
        <uuid>6695eb01-f6a4-8304-79aa-97f2502e0002</uuid>
        <memory unit='MiB'>256</memory>
        <vcpu>1</vcpu>
        <os><type arch='x86_64' machine='pc'>hvm</type></os>
        <devices>
          <disk type='file' device='disk'>
            <driver name='qemu' type='qcow2'/>
            <source file='/var/lib/libvirt/images/idle.qcow2'/>
            <target dev='vda' bus='virtio'/>
          </disk>
        </devices>
        <test:runstate>5</test:runstate>
      </domain>
      <network>
        <name>fuzznet</name>
        <uuid>8e7c2f3a-5b7a-4c55-9b0e-2d1f7f3b0001</uuid>
        <forward mode='nat'/>
        <bridge name='virbr77' stp='on' delay='0'/>
        <dns><host ip='10.251.77.6'><hostname>db</hostname></host></dns>
        <ip address='10.251.77.1' netmask='255.255.255.0'>
          <dhcp>
            <range start='10.251.77.10' end='10.251.77.99'/>
            <host mac='52:54:00:aa:00:01' ip='10.251.77.5' name='running'/>
          </dhcp>
        </ip>
      </network>
      <pool type='dir'>
        <name>images</name>
        <uuid>35bb2ad9-388a-cdfe-461a-b8907f6e0001</uuid>
        <capacity>107374182400</capacity>
        <allocation>10737418240</allocation>
        <available>96636764160</available>
        <target><path>/var/lib/libvirt/images</path></target>
        <volume type='file'>
          <name>root.qcow2</name>
          <key>/var/lib/libvirt/images/root.qcow2</key>
          <capacity>1073741824</capacity>
          <allocation>1073741824</allocation>
          <target><path>/var/lib/libvirt/images/root.qcow2</path><format type='qcow2'/></target>
        </volume>
        <volume type='file'>
          <name>raw.img</name>
          <key>/var/lib/libvirt/images/raw.img</key>
          <capacity>1073741824</capacity>
          <allocation>1073741824</allocation>
          <target><path>/var/lib/libvirt/images/raw.img</path><format type='raw'/></target>
        </volume>
      </pool>
    </node>
    """)


@dataclass
class World:
    """What the forms are posted about: one test-driver host as a reconcile cached it."""

    node_file: Path
    host: Host
    destination: Host
    ssh_host: Host
    running: Domain
    idle: Domain
    pool: StoragePool
    qcow2: Volume
    raw: Volume
    network: VirtualNetwork
    user: object


@pytest.fixture
def world(tmp_path) -> World:
    node_file = tmp_path / "node.xml"
    node_file.write_text(NODE_XML)
    host = Host.objects.create(name="fuzz", transport="test", address=str(node_file))
    host_reconcile(host=host, fresh=True)
    host.refresh_from_db()
    _store_xml_and_snapshots(host)
    NetworkFilter.objects.create(host=host, uuid="6695eb01-f6a4-8304-79aa-97f2502e00f1", name="clean-traffic",
                                 synced_at=timezone.now())
    destination = Host.objects.create(name="dest", transport="tcp", address="127.0.0.99", status=HostStatus.ONLINE)
    ssh_host = Host.objects.create(name="ssh-host", transport="ssh", address="127.0.0.98", username="root")
    pool = StoragePool.objects.select_related("host").get(host=host, name="images")
    yield World(
        node_file=node_file, host=host, destination=destination, ssh_host=ssh_host,
        running=Domain.objects.select_related("host").get(host=host, name="running"),
        idle=Domain.objects.select_related("host").get(host=host, name="idle"),
        pool=pool, qcow2=Volume.objects.get(pool=pool, name="root.qcow2"),
        raw=Volume.objects.get(pool=pool, name="raw.img"),
        network=VirtualNetwork.objects.get(host=host, name="fuzznet"),
        user=get_user_model().objects.create_user("operator-1", password=None),
    )
    connection_pool().drop(host.uri)


def _store_xml_and_snapshots(host: Host) -> None:
    conn = libvirt.open(host.uri)
    try:
        for domain in Domain.objects.filter(host=host):
            live = conn.lookupByUUIDString(str(domain.uuid))
            domain_xml_store(domain_id=domain.pk, inactive=live.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE),
                             live=live.XMLDesc(0))
            domain_snapshots_store(domain_id=domain.pk, snapshots=[SnapshotInfo(
                name="snap1", description="", parent=None, state="running", created=0, with_memory=True,
                current=True, depth=0)])
    finally:
        conn.close()


@pytest.fixture
def admin(db) -> Client:
    user = get_user_model().objects.create_superuser("fuzz-admin", password=None)
    client = Client()
    client.force_login(user)
    return client


def post_and_roll_back(client: Client, url: str, data: dict, *, then: tuple[str, ...] = ()) -> int:
    """POST, check the answer and the pages `then` (which show what the post may have changed),
    and undo whatever the post changed. Returns the status code."""
    with transaction.atomic():
        before = row_counts()
        try:
            response = client.post(url, _with_uploads(data))
        except Exception as exc:  # the test client raises what the view raised: say what was posted
            exc.add_note(f"POST {url} {data!r}")
            raise
        assert response.status_code < 500, f"POST {url} {data!r}: {response.status_code}"
        if response.status_code >= 400:
            assert row_counts() == before, f"POST {url} {data!r} was refused ({response.status_code}) but changed rows"
        for page in then:
            assert client.get(page).status_code < 500, f"GET {page} after POST {url} {data!r}"
        transaction.set_rollback(True)
    return response.status_code


def _with_uploads(data: dict) -> dict:
    """bytes values are sent as uploaded files."""
    return {name: SimpleUploadedFile(f"{name}.pem", value) if isinstance(value, bytes) else value
            for name, value in data.items()}


# ---- hosts --------------------------------------------------------------------------------------

def _ssh_key() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())


UPLOADS = st.one_of(st.just(MISSING), st.binary(max_size=300), st.just(_ssh_key()), st.sampled_from([
    b"", b"\x00" * 10, b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", b"-----BEGIN PRIVATE KEY-----\n\n-----END",
    b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n", b"x" * 70_000,
]))
TRANSPORTS = st.sampled_from(["ssh", "tcp", "tls", "test", "local", "SSH", "qemu+ssh", ""])
HOST_FILES = {"ssh_private_key": UPLOADS, "tls_ca_cert": UPLOADS, "tls_client_cert": UPLOADS,
              "tls_client_key": UPLOADS}


def host_posts(world_file: str) -> st.SearchStrategy[dict]:
    valid = {"name": "kvm1", "transport": "ssh", "address": "kvm1.example.org", "port": "22", "username": "root",
             "test_driver_file": world_file, "enabled": "on"}
    return posts(valid, transport=TRANSPORTS, address=st.sampled_from(["127.0.0.1", "::1", "fe80::1%eth0", "h."]),
                 **HOST_FILES)


ADDRESSES = st.one_of(hostile_text(), st.ip_addresses().map(str),
                      st.from_regex(r"\A[a-zA-Z0-9.%:\[\]#?&=@;-]{1,30}\Z"))


@examples(300)
@given(address=ADDRESSES, port=st.none() | st.integers(1, 65535))
def test_an_accepted_address_is_all_the_uri_says_about_the_host(address, port):
    """No query, fragment, user or port smuggled in: vmsite appends its own options to the URI."""
    try:
        clean = validate_address(address)
    except ValidationError:
        return
    for transport in ("ssh", "tls", "tcp"):
        parts = urlsplit(build_uri(transport=transport, address=clean, port=port, user="root"))
        assert (parts.hostname, parts.port, parts.path, parts.query, parts.fragment) == (
            clean.lower(), port, "/system", "", ""), (address, parts)


@pytest.mark.integration  # reaches a libvirtd or Redis
@FUZZ
@given(data=st.data())
def test_it_never_fails_on_a_host_being_added(admin, world, data):
    post_and_roll_back(admin, reverse("hosts:add"), data.draw(host_posts(str(world.node_file))),
                       then=(reverse("hosts:list"),))


@pytest.mark.integration  # reaches a libvirtd or Redis
@FUZZ
@given(data=st.data())
def test_it_never_fails_on_a_host_being_edited(admin, world, data):
    for host in (world.ssh_host, world.host):
        post_and_roll_back(admin, reverse("hosts:edit", args=[host.pk]), data.draw(host_posts(str(world.node_file))),
                           then=(reverse("hosts:list"), reverse("hosts:detail", args=[host.pk])))


# ---- VMs ----------------------------------------------------------------------------------------

BOTH = {"live": "on", "persistent": "on"}
ON_OFF = st.sampled_from(["on", "", "off", "0", "1"])
MAC = st.sampled_from(["52:54:00:aa:00:01", "52:54:00:AA:00:02", "53:54:00:aa:00:02", "52-54-00-aa-00-02",
                       "52:54:00:aa:00:0g", "52:54:00:aa:00"])

# route name, which VM, a valid post, field-specific values
VM_FORMS = [
    ("domains:rename", "idle", {"name": "renamed"}, {}),
    ("domains:delete", "idle", {"confirm_name": "idle", "with_volumes": "on"}, {}),
    ("domains:config_disk_attach", "running", {"pool": "images", "volume": "raw.img", "bus": "virtio", **BOTH},
     {"bus": st.sampled_from(["virtio", "sata", "scsi", "usb", "ide"]), "readonly": ON_OFF}),
    ("domains:config_disk_detach", "running", {"target": "vda", **BOTH}, {"target": st.sampled_from(["vda", "hdc"])}),
    ("domains:config_nic_attach", "running", {"network": "fuzznet", "model": "virtio", "mac": "52:54:00:aa:00:02",
                                              **BOTH}, {"mac": MAC, "no_boot_rom": ON_OFF}),
    ("domains:config_nic_detach", "running", {"mac": "52:54:00:aa:00:01", **BOTH}, {"mac": MAC}),
    ("domains:config_nic_link", "running", {"mac": "52:54:00:aa:00:01", "state": "down", **BOTH}, {}),
    ("domains:config_nic_change", "running", {"mac": "52:54:00:aa:00:01", "network": "fuzznet", "model": "e1000",
                                              "persistent": "on"}, {"live": ON_OFF}),
    ("domains:config_nic_filter", "running", {"mac": "52:54:00:aa:00:01", "filter": "clean-traffic",
                                              "parameters": "IP=10.251.77.5\nDHCPSERVER=10.251.77.1", **BOTH},
     {"parameters": st.sampled_from(["IP=", "IP=::1", "ip=1.2.3.4", "IP=1.2.3.4=5", "A=\x01", "X" * 70 + "=1"])}),
    ("domains:config_vcpus", "running", {"vcpus": "2", "maximum": "4", **BOTH}, {}),
    ("domains:config_memory", "running", {"memory_mib": "256", "maximum_mib": "512", **BOTH}, {}),
    ("domains:config_media", "running", {"target": "hdc", "pool": "images", "volume": "raw.img", **BOTH}, {}),
    ("domains:config_boot_order", "running", {"first": "hd", "second": "cdrom"},
     {"third": st.sampled_from(["hd", "cdrom", "network", "fd"])}),
    ("domains:config_metadata", "running", {"title": "web server", "description": "Serves the web.", **BOTH}, {}),
    ("domains:snapshot_create", "running", {"name": "snap2", "description": "before upgrade", "mode": "memory"},
     {"mode": st.sampled_from(["memory", "disk"])}),
    ("domains:snapshot_revert", "running", {"name": "snap1"}, {}),
    ("domains:snapshot_delete", "running", {"name": "snap1", "with_children": "on"}, {}),
    ("domains:clone", "idle", {"name": "idle-copy"}, {}),
    ("domains:template", "idle", {"template": "on"}, {}),
    ("domains:snapshot_refresh", "running", {}, {}),
    ("domains:config_xml_refresh", "running", {}, {}),
]


@pytest.mark.parametrize(("route", "vm", "valid", "specific"), VM_FORMS, ids=[form[0] for form in VM_FORMS])
@FEW
@given(data=st.data())
def test_it_never_fails_on_a_vm_form(admin, world, route, vm, valid, specific, data):
    domain = getattr(world, vm)
    post_and_roll_back(admin, reverse(route, args=[domain.pk]), data.draw(posts(valid, **specific)))


@FUZZ
@given(data=st.data())
def test_it_never_fails_on_a_migration(admin, world, data):
    valid = {"destination": str(world.destination.pk), "live": "on", "persist_destination": "on",
             "undefine_source": "on", "bandwidth_mib": "100"}
    post = data.draw(posts(valid, destination=ids(world.destination.pk, world.host.pk), postcopy=ON_OFF,
                           copy_storage=ON_OFF))
    for domain in (world.running, world.idle):
        post_and_roll_back(admin, reverse("domains:migrate", args=[domain.pk]), post)


@FUZZ
@given(data=st.data())
def test_it_never_fails_on_a_bulk_action(admin, world, data):
    domain_ids = st.lists(ids(world.running.pk, world.idle.pk), max_size=3)
    post = data.draw(posts({"action": "start", "domains": [str(world.idle.pk)], "next": "/vms/"},
                           domains=domain_ids, action=st.sampled_from(["start", "shutdown", "destroy", "delete"]),
                           next=st.sampled_from(["/vms/?q=1", "//evil.example/", "/vms//x", "https://evil.example/",
                                                 "/vms/\r\nX: y"])))
    post_and_roll_back(admin, reverse("domains:bulk"), post)


def create_vm_posts(world: World) -> st.SearchStrategy[dict]:
    valid = {
        "name": "new-vm", "title": "New", "description": "", "vcpus": "1", "max_vcpus": "2", "memory_mib": "256",
        "max_memory_mib": "512", "machine": "pc", "firmware": "bios", "cpu_mode": "host-model", "cpu_model": "",
        "disk_source": "new", "disk_pool": "images", "disk_size_gib": "1", "disk_format": "qcow2",
        "disk_volume": "", "disk_bus": "virtio", "disk_cache": "default", "cdrom_pool": "images",
        "cdrom_volume": "raw.img", "nic_kind": "network", "nic_network": "fuzznet", "nic_bridge": "br0",
        "nic_direct_dev": "eth0", "nic_direct_mode": "bridge", "nic_model": "virtio", "nic_mac": "52:54:00:12:34:56",
        "nic_boot_rom": "", "boot_first": "hd", "vnc": "on", "serial": "on", "start_now": "on", "cloud_init": "on",
        "ci_hostname": "newvm", "ci_user": "admin", "ci_ssh_keys": "ssh-ed25519 AAAAC3Nza me@example",
        "ci_password": "correct horse", "ci_user_data": "#cloud-config\npackages: [htop]\n",
    }
    return posts(valid, disk_source=st.sampled_from(["none", "new", "existing"]),
                 nic_kind=st.sampled_from(["none", "network", "bridge", "direct"]),
                 disk_format=st.sampled_from(["qcow2", "raw"]), nic_mac=MAC,
                 ci_ssh_keys=st.sampled_from(["ssh-rsa AAAA\nssh-ed25519 AAAA x", "ecdsa-sha2-nistp256 A= \x00"]))


@examples(100)
@given(data=st.data())
def test_it_never_fails_on_the_new_vm_wizard(admin, world, data):
    post_and_roll_back(admin, reverse("domains:create", args=[world.host.pk]), data.draw(create_vm_posts(world)))


def xml_edits(original: str) -> st.SearchStrategy[str]:
    """The VM's own XML with hostile text spliced in at a random place, or hostile text alone."""
    spliced = st.tuples(st.integers(0, len(original)), hostile_text(), st.sampled_from([
        "", "<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>", "&x;",
        "<disk type='file'><source file='/etc/shadow'/></disk>",
        "<emulator>/bin/sh</emulator>", "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'/>",
        "<name>", "</domain>", "<uuid>00000000-0000-0000-0000-000000000000</uuid>", "<?xml version='1.0'?>",
        "<interface type='ethernet'><script path='/bin/sh'/></interface>", "<vcpu>99999999999999999999</vcpu>",
        "<memory unit='YiB'>-1</memory>", "<name>a/b</name>",
        "<xi:include xmlns:xi='http://www.w3.org/2001/XInclude' href='/etc/passwd'/>",
    ])).map(lambda parts: original[:parts[0]] + parts[2] + parts[1] + original[parts[0]:])
    return st.one_of(st.just(original), spliced, hostile_text())


@examples(100)
@given(data=st.data())
def test_it_never_fails_on_an_xml_edit(admin, world, data):
    domain = data.draw(st.sampled_from([world.running, world.idle]))
    post_and_roll_back(admin, reverse("domains:config_xml_edit", args=[domain.pk]),
                       {"xml": data.draw(xml_edits(domain.xml_inactive))})


# ---- storage ------------------------------------------------------------------------------------

POOL_POSTS = {
    "dir": {"target_path": "/var/lib/libvirt/images/new"},
    "fs": {"source_device": "/dev/sdb1", "fs_format": "ext4", "target_path": "/mnt/fs"},
    "netfs": {"source_host": "nfs.example.org", "source_dir": "/export/vms", "target_path": "/mnt/nfs"},
    "logical": {"vg_name": "vg0", "source_devices": "/dev/sdc\n/dev/sdd"},
    "disk": {"source_device": "/dev/sde", "disk_format": "gpt"},
    "iscsi": {"source_host": "10.0.0.5", "source_port": "3260", "target_iqn": "iqn.2024-01.org.example:vms",
              "initiator_iqn": "iqn.2024-01.org.example:me"},
}
PATHS = st.sampled_from(["/a/../b", "/a//b", "/a/", "relative", "/a\x01b", "/a\x7fb", "/a\u2028b", "/a\ufffeb",
                         "/dev/../etc/passwd", "/dev/sd\x0cb", "/" + "a" * 1100, "/dev/" + "b" * 1100])


@pytest.mark.parametrize("pool_type", sorted(POOL_POSTS))
@FUZZ
@given(data=st.data())
def test_it_never_fails_on_a_pool_definition(admin, world, pool_type, data):
    valid = {"name": "new-pool", **POOL_POSTS[pool_type], "build": "on", "start": "on", "autostart": "on"}
    specific = {field: PATHS for field in ("target_path", "source_dir", "source_device") if field in valid}
    post = data.draw(posts(valid, **specific))
    post_and_roll_back(admin, reverse("storage:define_type", args=[world.host.pk, pool_type]), post)


@FEW
@given(data=st.data())
def test_it_never_fails_on_a_pool_discovery_or_an_unknown_pool_type(admin, world, data):
    pool_type = data.draw(st.sampled_from(["netfs", "iscsi", "dir", "rbd", "gluster", "zfs"]))
    post = data.draw(posts({"source_host": "nfs.example.org", "name": "p", "target_path": "/x"}))
    post_and_roll_back(admin, reverse("storage:discover", args=[world.host.pk, pool_type]), post)
    post_and_roll_back(admin, reverse("storage:define_type", args=[world.host.pk, pool_type]), post)


SIZES = {"capacity_0": "1", "capacity_1": "GiB"}
UNITS = st.sampled_from(["MiB", "GiB", "TiB", "PiB", "B", ""])


@FUZZ
@given(data=st.data())
def test_it_never_fails_on_a_volume_being_created(admin, world, data):
    valid = {"name": "new.qcow2", "format": "qcow2", **SIZES, "allocation_0": "1", "allocation_1": "MiB",
             "backing": str(world.qcow2.pk)}
    post = data.draw(posts(valid, capacity_1=UNITS, allocation_1=UNITS, backing=ids(world.qcow2.pk, world.raw.pk),
                           format=st.sampled_from(["qcow2", "raw", "vmdk", "iso"])))
    post_and_roll_back(admin, reverse("storage:volume_create", args=[world.pool.pk]), post)


@FUZZ
@given(data=st.data())
def test_it_never_fails_on_a_volume_resize_clone_or_delete(admin, world, data):
    volume = data.draw(st.sampled_from([world.qcow2, world.raw]))
    resize = data.draw(posts({**SIZES, "shrink": "on"}, capacity_1=UNITS))
    post_and_roll_back(admin, reverse("storage:volume_resize", args=[volume.pk]), resize)
    post_and_roll_back(admin, reverse("storage:volume_clone", args=[volume.pk]), data.draw(posts({"name": "copy.img"})))
    delete = data.draw(posts({"confirm_name": volume.name, "detach": "on"}))
    post_and_roll_back(admin, reverse("storage:volume_delete", args=[volume.pk]), delete)
    post_and_roll_back(admin, reverse("storage:pool_delete", args=[world.pool.pk]),
                       data.draw(posts({"confirm_name": "images"})))


@FUZZ
@given(data=st.data())
def test_it_never_fails_on_an_upload_being_started(admin, world, data):
    post = data.draw(posts({"name": "upload.iso", "size": "1048576"}, volume=ids(world.raw.pk, world.qcow2.pk)))
    post_and_roll_back(admin, reverse("storage:upload", args=[world.pool.pk]), post)


# ---- networks -----------------------------------------------------------------------------------

def network_posts(world: World) -> st.SearchStrategy[dict]:
    valid = {"host": str(world.host.pk), "name": "lab", "mode": "nat", "bridge": "virbr50", "forward_dev": "eth1",
             "macvtap_mode": "bridge", "ipv4_subnet": "10.251.1.0/24", "ipv4_gateway": "10.251.1.1",
             "ipv4_dhcp_start": "10.251.1.10", "ipv4_dhcp_end": "10.251.1.20", "ipv6_subnet": "fd00:251:1::/64",
             "ipv6_gateway": "fd00:251:1::1", "ipv6_dhcp_start": "fd00:251:1::10", "ipv6_dhcp_end": "fd00:251:1::20",
             "domain": "lab.example", "mtu": "1500", "dns_hosts": "10.251.1.5 db", "inbound_kbps": "1000",
             "outbound_kbps": "1000", "portgroups": "", "autostart": "on", "start_now": "on"}
    return posts(valid, host=ids(world.host.pk, world.destination.pk),
                 mode=st.sampled_from(["nat", "route", "open", "isolated", "bridge", "macvtap", "hostdev"]),
                 ipv4_subnet=st.sampled_from(["10.251.77.0/24", "10.0.0.0/8", "10.251.1.0/30", "0.0.0.0/0",
                                              "10.251.1.0/255.255.255.0", "fd00::/64", "10.251.1.0/24 "]),
                 portgroups=st.sampled_from(["web 10", "web 10 1000 500", "web 0", "web 4095", "web --5",
                                             "web ²", "web ١٢", "web -", "web 10 ² 1", "web 10\nweb 11"]),
                 openvswitch=ON_OFF)


@examples(120)
@given(data=st.data())
def test_it_never_fails_on_a_network_being_created(admin, world, data):
    post_and_roll_back(admin, reverse("networking:add"), data.draw(network_posts(world)))


@FUZZ
@given(data=st.data())
def test_it_never_fails_on_a_network_being_edited(admin, world, data):
    valid = {"ipv4_dhcp_start": "10.251.77.100", "ipv4_dhcp_end": "10.251.77.200", "domain": "lab.example",
             "mtu": "1400", "inbound_kbps": "100", "outbound_kbps": "100"}
    post_and_roll_back(admin, reverse("networking:edit", args=[world.network.pk]), data.draw(posts(valid)))


@FUZZ
@given(data=st.data())
def test_it_never_fails_on_leases_and_dns_entries(admin, world, data):
    network = world.network.pk
    lease = data.draw(posts({"mac": "52:54:00:aa:00:09", "ip": "10.251.77.50", "hostname": "web2"}, mac=MAC,
                            ip=st.sampled_from(["10.251.77.5", "10.251.77.1", "10.251.77.255", "fd00::5", "1.2.3.4"])))
    post_and_roll_back(admin, reverse("networking:lease_add", args=[network]), lease)
    post_and_roll_back(admin, reverse("networking:lease_remove", args=[network]),
                       data.draw(posts({"mac": "52:54:00:aa:00:01"}, mac=MAC)))
    post_and_roll_back(admin, reverse("networking:dns_add", args=[network]),
                       data.draw(posts({"ip": "10.251.77.7", "hostname": "cache"})))
    post_and_roll_back(admin, reverse("networking:dns_remove", args=[network]),
                       data.draw(posts({"ip": "10.251.77.6"})))
    post_and_roll_back(admin, reverse("networking:delete", args=[network]),
                       data.draw(posts({"confirm_name": "fuzznet"})))


@FUZZ
@given(data=st.data())
def test_it_never_fails_on_a_host_interface_or_a_network_filter(admin, world, data):
    interface = {"host": str(world.host.pk), "kind": "bridge", "name": "br5", "members": "eth1", "vlan": "42",
                 "parent": "eth1", "bond_mode": "active-backup", "stp": "on", "ipv4": "192.0.2.10/24", "mtu": "1500",
                 "start": "on"}
    post_and_roll_back(admin, reverse("networking:interface_add"), data.draw(posts(
        interface, kind=st.sampled_from(["bridge", "vlan", "bond", "ethernet"]),
        ipv4=st.sampled_from(["dhcp", "192.0.2.10", "192.0.2.10/255.255.255.0", "192.0.2.10/33", "::1/64"]))))
    nwfilter = "<filter name='vmsite-fuzz' chain='ipv4'><rule action='accept' direction='out'><all/></rule></filter>"
    post_and_roll_back(admin, reverse("networking:filter_add"),
                       data.draw(posts({"host": str(world.host.pk), "xml": nwfilter}, xml=xml_edits(nwfilter))))


# ---- users and grants ---------------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_it_never_fails_on_users_and_grants(admin, world, data):
    user = world.user.pk
    grant = data.draw(posts({"host": str(world.host.pk), "vm": "running", "role": "operator"},
                            host=ids(world.host.pk), role=st.sampled_from(["viewer", "operator", "admin", "owner"]),
                            vm=st.sampled_from([str(world.running.uuid), "6695eb01f6a4830479aa97f2502e0001",
                                                "{6695eb01-f6a4-8304-79aa-97f2502e0001}", "urn:uuid:1"])))
    post_and_roll_back(admin, reverse("users:grant_add", args=[user]), grant)
    post_and_roll_back(admin, reverse("users:update", args=[user]),
                       data.draw(posts({"active": "on", "administrator": ""})))


@examples(10)
@given(data=st.data())
def test_it_never_fails_on_a_user_being_added_or_a_password_set(admin, world, data):
    # Few examples: an accepted password is hashed, on purpose slowly.
    post_and_roll_back(admin, reverse("users:add"),
                       data.draw(posts({"username": "new.user", "password": "Tr1cky-Passphrase", "administrator": ""})))
    post_and_roll_back(admin, reverse("users:password", args=[world.user.pk]),
                       data.draw(posts({"password": "Tr1cky-Passphrase"})))
