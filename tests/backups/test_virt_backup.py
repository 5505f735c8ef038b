"""virt/backup.py against the real libvirtd: push-mode full and incremental backups of a running
guest into a dir pool, a chain that breaks when its checkpoint goes, a shut-off VM's copy, the
restore of a chain into a new VM, and a damaged file refused. The guest is the small one (it stays
in SeaBIOS and writes nothing); what a real guest wrote comes back is tests/backups/test_proof.py."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import blake3
import libvirt
import pytest

from tests.backups.images import dirty_pages
from tests.guests import TEST_GUEST_PREFIX
from tests.storage.conftest import remove_pool
from virt import backup as virt_backup
from virt import checksums
from virt.errors import OperationInvalid, VirtError
from virt.storage import pool_volume_create
from virt.volumes import upload_bytes
from virt.xml.backup import BackupXML, CheckpointXML

LOCAL = "qemu:///system"
pytestmark = pytest.mark.integration


def test_backup_and_checkpoint_xml_read_back():
    backup = BackupXML.new()
    backup.mode = "push"
    backup.incremental = "vmsite-1"
    backup.add_file_disk(name="vda", target_file="/pool/a.qcow2", driver_type="qcow2")
    backup.skip_disk("vdb")
    again = BackupXML.from_xml(backup.to_xml())
    assert again.incremental == "vmsite-1" and again.mode == "push"
    assert [(disk.name, disk.backup, disk.target_file) for disk in again.disks] == [
        ("vda", True, "/pool/a.qcow2"), ("vdb", False, None)]
    pull = BackupXML.new()
    pull.mode = "pull"
    pull.server_transport, pull.server_socket = "unix", "/run/x.sock"
    pull.add_scratch_disk(name="vda", scratch_file="/pool/scratch.qcow2")
    pulled = BackupXML.from_xml(pull.to_xml())
    assert (pulled.mode, pulled.server_transport, pulled.server_socket) == ("pull", "unix", "/run/x.sock")
    assert [(disk.name, disk.backup, disk.scratch_file, disk.target_file) for disk in pulled.disks] == [
        ("vda", True, "/pool/scratch.qcow2", None)]
    checkpoint = CheckpointXML.new()
    checkpoint.name = "vmsite-2"
    checkpoint.add_disk("vda", bitmap=True)
    assert CheckpointXML.from_xml(checkpoint.to_xml()).disk("vda").checkpoint == "bitmap"


@pytest.fixture
def running_guest(guests, scratch_pool):
    disk = pool_volume_create(scratch_pool.pool, name="disk.qcow2", capacity=16 * 2**20, allocation=None, fmt="qcow2")
    domain = guests.define(LOCAL, disk_path=disk.path(), start=True)
    yield domain
    if domain.isActive():
        domain.destroy()
    for checkpoint in domain.listAllCheckpoints(0):
        checkpoint.delete(libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)


def _names(domain, stamp):
    return {disk.target: f"bk-{stamp}-{disk.target}.qcow2" for disk in virt_backup.source_disks(domain)}


def _back_up(conn, domain, pool, stamp, since=None):
    return virt_backup.back_up_running(conn, domain, pool_name=pool.name, volume_names=_names(domain, stamp),
                                       checkpoint=virt_backup.CHECKPOINT_PREFIX + stamp, since=since,
                                       progress=lambda *_: None, cancelled=lambda: False, poll_interval=0.05)


def _link(outcome):
    return virt_backup.ChainLink(checkpoint=outcome.checkpoint, volumes={d.target: d.volume for d in outcome.disks},
                                 sources={d.target: d.source for d in outcome.disks})


def test_a_full_then_an_incremental_backup_make_a_chain_that_restores_flat(running_guest, backup_pool):
    conn = libvirt.open(LOCAL)
    domain = running_guest
    full = _back_up(conn, domain, backup_pool, "1")
    assert full.kind == "full" and full.checkpoint == "vmsite-1"
    assert "crash-consistent" in full.consistency  # the small guest has no agent
    [disk] = full.disks
    assert disk.target == "vda" and disk.capacity == 16 * 2**20
    b3sum = subprocess.run(["b3sum", "--no-names", disk.path], capture_output=True, text=True, check=True).stdout
    assert disk.checksum == f"blake3:{b3sum.strip()}"  # what an admin's b3sum says of the file
    assert virt_backup.chain_break(domain, _link(full), virt_backup.source_disks(domain)) is None

    incremental = _back_up(conn, domain, backup_pool, "2", since=_link(full))
    assert incremental.kind == "incremental"
    chain = [virt_backup.ChainFile(volume=d.volume, format=d.format, checksum=d.checksum)
             for d in (full.disks[0], incremental.disks[0])]
    virt_backup.verify_chain(conn, backup_pool.name, chain)
    sha256sum = subprocess.run(["sha256sum", full.disks[0].path], capture_output=True, text=True, check=True).stdout
    recorded_before_blake3 = virt_backup.ChainFile(volume=full.disks[0].volume, format="qcow2",
                                                   checksum=f"sha256:{sha256sum.split()[0]}")
    virt_backup.verify_chain(conn, backup_pool.name, [recorded_before_blake3])  # checked with its own algorithm
    info = subprocess.run(["qemu-img", "info", "-U", "-f", "qcow2", incremental.disks[0].path], capture_output=True,
                          text=True, check=True).stdout
    assert f"backing file: {full.disks[0].path}" in info
    assert sorted(c.getName() for c in domain.listAllCheckpoints(0)) == ["vmsite-1", "vmsite-2"]

    name = f"{TEST_GUEST_PREFIX}restored-{domain.name()[-8:]}"
    new_uuid, restored = virt_backup.restore_as_new_vm(
        conn, domain_xml=incremental.domain_xml, backup_pool=backup_pool.name,
        tops={"vda": incremental.disks[0].volume}, target_pool=backup_pool.name, new_name=name,
        progress=lambda *_: None, verify_files=chain)
    try:
        new = conn.lookupByUUIDString(new_uuid)
        assert new.name() == name and new_uuid != domain.UUIDString()
        flat = restored[0].path
        info = subprocess.run(["qemu-img", "info", "-f", "qcow2", flat], capture_output=True, text=True,
                              check=True).stdout
        assert "backing file" not in info
        compare = subprocess.run(["qemu-img", "compare", "-U", "-f", "qcow2", "-F", "qcow2", flat,
                                  incremental.disks[0].path], capture_output=True, text=True)
        assert compare.returncode == 0, compare.stdout + compare.stderr
        assert flat in new.XMLDesc(0)
    finally:
        conn.lookupByUUIDString(new_uuid).undefine()


def test_a_chain_breaks_when_its_checkpoint_is_gone_and_a_damaged_file_is_refused(running_guest, backup_pool):
    conn = libvirt.open(LOCAL)
    domain = running_guest
    full = _back_up(conn, domain, backup_pool, "1")
    assert virt_backup.drop_checkpoints(domain) == 1
    reason = virt_backup.chain_break(domain, _link(full), virt_backup.source_disks(domain))
    assert "no checkpoint vmsite-1" in reason
    moved = virt_backup.ChainLink(checkpoint="vmsite-1", volumes={}, sources={"vda": "/elsewhere.qcow2"})
    assert "another image" in virt_backup.chain_break(domain, moved, virt_backup.source_disks(domain))

    damaged = virt_backup.ChainFile(volume=full.disks[0].volume, format="qcow2", checksum="blake3:" + "0" * 64)
    with pytest.raises(OperationInvalid, match="damaged"):
        virt_backup.verify_chain(conn, backup_pool.name, [damaged])
    virt_backup.verify_chain(conn, backup_pool.name, [damaged], checksums=False)  # its header is right
    # A restore checks the checksums while it copies: a mismatch defines nothing and keeps no copy.
    before = sorted(backup_pool.pool.listVolumes())
    name = f"{TEST_GUEST_PREFIX}damaged-{domain.name()[-8:]}"
    with pytest.raises(OperationInvalid, match="damaged"):
        virt_backup.restore_as_new_vm(conn, domain_xml=full.domain_xml, backup_pool=backup_pool.name,
                                      tops={"vda": full.disks[0].volume}, target_pool=backup_pool.name,
                                      new_name=name, progress=lambda *_: None, verify_files=[damaged])
    backup_pool.pool.refresh(0)
    assert sorted(backup_pool.pool.listVolumes()) == before
    assert name not in conn.listDefinedDomains()


def test_a_failed_backup_leaves_no_file_and_no_checkpoint(running_guest, backup_pool):
    conn = libvirt.open(LOCAL)
    domain = running_guest
    full = _back_up(conn, domain, backup_pool, "1")
    before = sorted(backup_pool.pool.listVolumes())
    wrong_base = virt_backup.ChainLink(checkpoint="vmsite-none", volumes=_link(full).volumes,
                                       sources=_link(full).sources)
    with pytest.raises(Exception):
        _back_up(conn, domain, backup_pool, "2", since=wrong_base)
    assert sorted(backup_pool.pool.listVolumes()) == before
    assert [c.getName() for c in domain.listAllCheckpoints(0)] == ["vmsite-1"]


def test_a_shut_off_vm_is_copied_whole(running_guest, backup_pool):
    conn = libvirt.open(LOCAL)
    domain = running_guest
    domain.destroy()
    outcome = virt_backup.back_up_shut_off(conn, domain, pool_name=backup_pool.name,
                                           volume_names=_names(domain, "3"), progress=lambda *_: None,
                                           vet=lambda volume: "qcow2")
    assert outcome.kind == "full" and outcome.checkpoint == "" and "shut off" in outcome.consistency
    assert outcome.disks[0].capacity == 16 * 2**20


def test_a_copied_backup_and_its_restore_are_on_stable_storage_when_they_are_done(running_guest, backup_pool):
    """libvirt's copies (qemu-img convert's default cache) leave what they wrote in the page cache;
    a backup or a restore that says it is done has its file flushed (virt.volumes.flush_to_disk)."""
    conn = libvirt.open(LOCAL)
    domain = running_guest
    domain.destroy()
    [disk] = virt_backup.source_disks(domain)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 8M", disk.source], check=True, capture_output=True)
    outcome = virt_backup.back_up_shut_off(conn, domain, pool_name=backup_pool.name,
                                           volume_names=_names(domain, "4"), progress=lambda *_: None,
                                           vet=lambda volume: "qcow2")
    [written] = outcome.disks
    assert written.size > 8 * 2**20 and dirty_pages(written.path) == 0
    name = f"{TEST_GUEST_PREFIX}durable-{domain.name()[-8:]}"
    new_uuid, [restored] = virt_backup.restore_as_new_vm(
        conn, domain_xml=outcome.domain_xml, backup_pool=backup_pool.name, tops={"vda": written.volume},
        target_pool=backup_pool.name, new_name=name, progress=lambda *_: None,
        verify_files=[virt_backup.ChainFile(volume=written.volume, format="qcow2", checksum=written.checksum)])
    try:
        assert dirty_pages(restored.path) == 0
    finally:
        conn.lookupByUUIDString(new_uuid).undefine()


def test_small_files_go_into_a_pool_and_come_back(backup_pool):
    conn = libvirt.open(LOCAL)
    key = virt_backup.write_file(conn, backup_pool.name, "x.manifest.json", b'{"a": 1}')
    assert dirty_pages(key) == 0  # a manifest is what rebuilds the catalogue: on stable storage when written
    assert virt_backup.read_files(conn, backup_pool.name, suffix=".manifest.json") == {"x.manifest.json": b'{"a": 1}'}


def test_a_qcow2_v2_disk_is_seen_as_one_and_refused_for_bitmaps(guests, scratch_pool):
    """libvirt makes a qcow2 volume whose XML names no compat as version 2, and reports no <compat>
    for it: such a disk must be refused for checkpoints (a full backup), not fail in QEMU."""
    volume = scratch_pool.pool.createXML("<volume><name>v2.qcow2</name><capacity unit='MiB'>16</capacity>"
                                         "<target><format type='qcow2'/></target></volume>", 0)
    version = subprocess.run(["qemu-img", "info", "--output=json", volume.path()], capture_output=True, text=True,
                             check=True).stdout
    assert '"compat": "0.10"' in version
    domain = guests.define(LOCAL, disk_path=volume.path())
    (disk,) = virt_backup.source_disks(domain)
    assert disk.qcow2_version == "0.10" and "version 2 qcow2" in virt_backup.bitmap_refusal([disk])


def test_a_qcow2_disk_upgraded_as_the_refusal_says_is_seen_as_version_3_at_once(guests, scratch_pool):
    """The refusal's advice, `qemu-img amend -o compat=1.1`, changes the file behind libvirt's back:
    libvirt's volume XML keeps the old version until its pool is refreshed (found in a walk: the
    next backups were still full, their notes still saying version 2)."""
    volume = scratch_pool.pool.createXML("<volume><name>v2.qcow2</name><capacity unit='MiB'>16</capacity>"
                                         "<target><format type='qcow2'/></target></volume>", 0)
    domain = guests.define(LOCAL, disk_path=volume.path())
    assert virt_backup.source_disks(domain)[0].qcow2_version == "0.10"
    subprocess.run(["qemu-img", "amend", "-f", "qcow2", "-o", "compat=1.1", volume.path()], check=True)
    (disk,) = virt_backup.source_disks(domain)
    assert disk.qcow2_version == "1.1" and virt_backup.bitmap_refusal([disk]) is None


@pytest.mark.parametrize("algorithm, reference", [("blake3", blake3.blake3), ("sha256", hashlib.sha256)])
def test_the_checksum_read_in_parallel_segments_is_the_files_digest(backup_pool, algorithm, reference):
    conn = backup_pool.conn
    data = os.urandom(5 * 2**20 + 12345)  # segments of 1 MiB: five whole ones and a short last one
    volume = pool_volume_create(backup_pool.pool, name="bytes.raw", capacity=len(data), allocation=None, fmt="raw")
    upload_bytes(conn, volume, data)
    expected = reference(data).hexdigest()
    streamed = {"algorithm": algorithm, "read_locally": False}
    assert checksums.volume_digest(conn, volume, segment=2**20, streams=3, **streamed) == expected
    assert checksums.volume_digest(conn, volume, **streamed) == expected  # one segment: the default
    assert checksums.volume_checksum(conn, volume, algorithm=algorithm) == f"{algorithm}:{expected}"
    empty = pool_volume_create(backup_pool.pool, name="empty.raw", capacity=0, allocation=None, fmt="raw")
    assert checksums.volume_digest(conn, empty, segment=2**20, **streamed) == reference(b"").hexdigest()


def test_the_checksum_reads_the_file_where_it_lies_only_through_this_machines_own_libvirtd(backup_pool, harness):
    """qemu:///system is this machine: the file is hashed where it lies, the same digest as through
    the streams, with progress. A host reached over TCP is hashed through its streams, even when a
    file of the same path and size exists here (on this machine, another mount namespace's)."""
    data = os.urandom(3 * 2**20 + 77)
    volume = pool_volume_create(backup_pool.pool, name="local.raw", capacity=len(data), allocation=None, fmt="raw")
    upload_bytes(backup_pool.conn, volume, data)
    expected = f"blake3:{blake3.blake3(data).hexdigest()}"
    assert checksums.local_file(backup_pool.conn, volume) == volume.path()
    seen: list[tuple[int, int]] = []
    assert checksums.volume_checksum(backup_pool.conn, volume, progress=lambda *done: seen.append(done)) == expected
    assert seen[-1] == (len(data), len(data))
    assert checksums.volume_checksum(backup_pool.conn, volume, read_locally=False) == expected

    remote = libvirt.open(harness().tcp_uri)
    name = f"vmsite-test-sum-{uuid.uuid4().hex[:8]}"
    folder = Path("/var/lib/libvirt/images") / name
    pool = remote.storagePoolDefineXML(f"<pool type='dir'><name>{name}</name><target><path>{folder}</path></target>"
                                       "</pool>", 0)
    try:
        pool.build(0)
        pool.create(0)
        far = pool_volume_create(pool, name="far.raw", capacity=len(data), allocation=None, fmt="raw")
        upload_bytes(remote, far, data)
        folder.mkdir(mode=0o755)  # here, not in the remote host's namespace: a decoy of the same path and size
        Path(far.path()).write_bytes(bytes(len(data)))
        assert checksums.local_file(remote, far) is None
        assert checksums.volume_checksum(remote, far) == expected
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        remove_pool(remote.getURI(), name)


def test_a_disk_replaced_at_the_same_path_breaks_the_chain(running_guest, backup_pool, scratch_pool):
    """As a restore in place leaves it: the VM's checkpoint is still defined, its disk is the same
    path, but the image there is another one, without the checkpoint's bitmap."""
    conn = libvirt.open(LOCAL)
    domain = running_guest
    full = _back_up(conn, domain, backup_pool, "1")
    domain.destroy()
    disk = scratch_pool.pool.storageVolLookupByName("disk.qcow2")
    disk.delete(0)
    pool_volume_create(scratch_pool.pool, name="disk.qcow2", capacity=16 * 2**20, allocation=None, fmt="qcow2")
    domain.create()
    reason = virt_backup.chain_break(domain, _link(full), virt_backup.source_disks(domain))
    assert reason == ("Disk vda has no dirty bitmap of the checkpoint vmsite-1: its image was replaced or restored "
                      "since the previous backup."), reason
    with pytest.raises(VirtError, match="missing or broken bitmap"):  # libvirt would refuse it anyway
        _back_up(conn, domain, backup_pool, "2", since=_link(full))


def test_a_chain_goes_on_only_where_the_pool_holds_the_previous_files_at_their_paths(backup_pool):
    """After a migration the backup pool of the new host must be the same storage (NFS, a shared
    folder): the previous point's files there, at the paths an incremental names as backing files."""
    conn = backup_pool.conn
    volume = pool_volume_create(backup_pool.pool, name="point-vda.qcow2", capacity=2**20, allocation=None,
                                fmt="qcow2")

    def link(name: str, path: str) -> virt_backup.ChainLink:
        return virt_backup.ChainLink(checkpoint="vmsite-1", volumes={"vda": name}, sources={"vda": "/d.qcow2"},
                                     paths={"vda": path})

    assert virt_backup.chain_files_missing(conn, backup_pool.name, link(volume.name(), volume.path())) is None
    missing = virt_backup.chain_files_missing(conn, backup_pool.name, link("other.qcow2", volume.path()))
    assert missing == f"the previous backup's file other.qcow2 is not in the pool {backup_pool.name} on this host."
    elsewhere = virt_backup.chain_files_missing(conn, backup_pool.name, link(volume.name(), "/mnt/a/point-vda.qcow2"))
    assert elsewhere == (f"the previous backup's file point-vda.qcow2 is at {volume.path()} on this host, not at "
                         "/mnt/a/point-vda.qcow2, where it was written.")
