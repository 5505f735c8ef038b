"""The rules of backups that need no daemon: which disks can be backed up incrementally, and what
a manifest must hold to be read back into the catalogue."""
import json

import pytest

from backups.manifest import MANIFEST_FORMAT, ManifestInvalid, parse_manifest
from virt.backup import SourceDisk, bitmap_refusal


def disk(fmt="qcow2", version="1.1", target="vda"):
    return SourceDisk(target=target, source=f"/p/{target}", format=fmt, capacity=1, qcow2_version=version)


def test_only_qcow2_v3_disks_can_be_backed_up_incrementally():
    assert bitmap_refusal([disk(), disk(target="vdb", version=None)]) is None
    assert "vdb is raw" in bitmap_refusal([disk(), disk(fmt="raw", target="vdb")])
    assert "compat=1.1" in bitmap_refusal([disk(version="0.10")])
    assert "no writable disks" in bitmap_refusal([])


def test_a_manifest_is_read_only_when_it_is_whole():
    good = {"format": MANIFEST_FORMAT, "version": 2, "vm": {"uuid": "6695eb01-f6a4-8304-79aa-97f2502e193f",
                                                           "name": "vm"},
            "name": "20261204-120000", "kind": "full", "parent": None, "chain": "6695eb01-f6a4-8304-79aa-97f2502e1944",
            "checkpoint": "", "created_at": "2026-12-04T12:00:00+00:00", "consistency": "x", "note": "", "seconds": 1,
            "domain_xml": "<domain/>",
            "disks": [{"target": "vda", "source": "/a", "volume": "v", "path": "/p/v", "format": "qcow2",
                       "capacity": 1, "size": 1, "checksum": "blake3:" + "a" * 64}]}
    assert parse_manifest(json.dumps(good).encode())["name"] == "20261204-120000"
    bad_checksums = [{**good["disks"][0], "checksum": checksum}
                     for checksum in ("a" * 64, "md5:" + "a" * 32, "blake3:" + "A" * 64, "sha256:" + "a" * 63, 7)]
    for broken in ({**good, "format": "other"}, {**good, "version": 3}, {**good, "disks": []},
                   {**good, "kind": "weekly"}, {**good, "disks": [{"target": "vda"}]},
                   *({**good, "disks": [disk]} for disk in bad_checksums)):
        with pytest.raises(ManifestInvalid):
            parse_manifest(json.dumps(broken).encode())
    with pytest.raises(ManifestInvalid):
        parse_manifest(b"\xff not json")


def test_a_version_1_manifest_is_read_with_its_sha256_as_a_labelled_checksum():
    """Points written before checksums named their algorithm: each disk's "sha256" is read as
    "sha256:<hex>", so a catalogue rebuilt from an older pool checks those files with SHA-256."""
    disk = {"target": "vda", "source": "/a", "volume": "v", "path": "/p/v", "format": "qcow2", "capacity": 1,
            "size": 1, "sha256": "b" * 64}
    old = {"format": MANIFEST_FORMAT, "version": 1, "vm": {"uuid": "6695eb01-f6a4-8304-79aa-97f2502e193f", "name": "vm"},
           "name": "20261204-120000", "kind": "full", "parent": None, "chain": "6695eb01-f6a4-8304-79aa-97f2502e1944",
           "checkpoint": "", "created_at": "2026-12-04T12:00:00+00:00", "consistency": "x", "note": "", "seconds": 1,
           "domain_xml": "<domain/>", "disks": [disk]}
    [read] = parse_manifest(json.dumps(old).encode())["disks"]
    assert read["checksum"] == "sha256:" + "b" * 64 and "sha256" not in read
    with pytest.raises(ManifestInvalid):
        parse_manifest(json.dumps({**old, "disks": [{**disk, "sha256": "not hex"}]}).encode())


def _chain(*spec):
    """Points from ("A", None), ("B", "A")...: oldest first, each a minute after the previous."""
    from datetime import datetime, timedelta, UTC

    from backups.models import RestorePoint

    points, by_name = [], {}
    start = datetime(2026, 12, 4, tzinfo=UTC)
    for index, (name, parent) in enumerate(spec, start=1):
        point = RestorePoint(pk=index, name=name, parent_id=by_name[parent].pk if parent else None,
                             created_at=start + timedelta(minutes=index))
        by_name[name] = point
        points.append(point)
    return points


def _pruned(points, keep):
    from backups.retention import points_to_prune

    return [point.name for point in points_to_prune(points, keep)]


def test_retention_keeps_the_last_n_and_every_point_they_rest_on():
    # A full <- B <- C, then a new chain D full <- E
    points = _chain(("A", None), ("B", "A"), ("C", "B"), ("D", None), ("E", "D"))
    assert _pruned(points, 1) == ["C", "B", "A"]  # E needs D: both stay
    assert _pruned(points, 2) == ["C", "B", "A"]
    assert _pruned(points, 3) == []  # C is kept, and with it B and A
    assert _pruned(points, 0) == ["C", "B", "A"]  # never fewer than one point (and its chain)
    assert _pruned(points[::-1], 1) == ["C", "B", "A"]  # any order in: newest first out


def test_retention_removes_an_incremental_before_the_point_it_rests_on():
    points = _chain(("A", None), ("B", "A"), ("C", "B"), ("D", None))
    assert _pruned(points, 1) == ["C", "B", "A"]
    only_fulls = _chain(("A", None), ("B", None), ("C", None))
    assert _pruned(only_fulls, 2) == ["A"]


def _dated(*spec):
    """Points from ("A", None, "2026-12-04 23:00"), ...: a point, its parent and when it was taken (UTC)."""
    from datetime import UTC, datetime

    from backups.models import RestorePoint

    points, by_name = [], {}
    for index, (name, parent, when) in enumerate(spec, start=1):
        point = RestorePoint(pk=index, name=name, parent_id=by_name[parent].pk if parent else None,
                             created_at=datetime.fromisoformat(when).replace(tzinfo=UTC))
        by_name[name] = point
        points.append(point)
    return points


def test_retention_keeps_the_newest_point_of_each_day_week_and_month_asked_for():
    from datetime import UTC

    from backups.retention import Retention, points_to_prune

    # Fulls only (no chains): Mon 2026-11-02 ... a point twice on some days.
    points = _dated(("oct-30", None, "2026-10-30 02:00"), ("nov-02", None, "2026-11-02 02:00"),
                    ("nov-09a", None, "2026-11-09 02:00"), ("nov-09b", None, "2026-11-09 14:00"),
                    ("nov-30", None, "2026-11-30 02:00"), ("dec-01", None, "2026-12-01 02:00"),
                    ("dec-02a", None, "2026-12-02 02:00"), ("dec-02b", None, "2026-12-02 20:00"),
                    ("dec-03", None, "2026-12-03 02:00"))

    def kept(rule):
        pruned = {point.name for point in points_to_prune(points, rule, zone=UTC)}
        return [point.name for point in points if point.name not in pruned]

    assert kept(Retention(last=2)) == ["dec-02b", "dec-03"]
    # The newest of each of the last 3 days that have points (the day's earlier point goes).
    assert kept(Retention(last=1, daily=3)) == ["dec-01", "dec-02b", "dec-03"]
    # ISO weeks: 2026-W49 (Nov 30 - Dec 6), W46 (Nov 9), W45 (Nov 2); Oct 30 is W44.
    assert kept(Retention(last=1, weekly=3)) == ["nov-02", "nov-09b", "dec-03"]
    assert kept(Retention(last=1, monthly=2)) == ["nov-30", "dec-03"]
    assert kept(Retention(last=1, monthly=12)) == ["oct-30", "nov-30", "dec-03"]  # months with no point do not count
    assert kept(Retention(last=2, daily=1, weekly=2, monthly=3)) == ["oct-30", "nov-09b", "nov-30", "dec-02b", "dec-03"]
    assert Retention(last=2, daily=1, monthly=3).describe() == "the last 2, 1 daily, 3 monthly"


def test_a_point_kept_by_day_week_or_month_keeps_its_chain():
    from datetime import UTC

    from backups.retention import Retention, points_to_prune

    # A weekly chain: full on Mondays, incrementals on the other days.
    points = _dated(("w1-full", None, "2026-11-23 02:00"), ("w1-tue", "w1-full", "2026-11-24 02:00"),
                    ("w1-sun", "w1-tue", "2026-11-29 02:00"),
                    ("w2-full", None, "2026-11-30 02:00"), ("w2-tue", "w2-full", "2026-12-01 02:00"))
    pruned = [point.name for point in points_to_prune(points, Retention(last=1, weekly=2), zone=UTC)]
    assert pruned == []  # w1-sun is last week's newest: it needs w1-tue and w1-full
    pruned = [point.name for point in points_to_prune(points, Retention(last=1, daily=2), zone=UTC)]
    assert pruned == ["w1-sun", "w1-tue", "w1-full"]  # newest first: an incremental before its parent


def test_days_are_those_of_the_time_zone():
    from zoneinfo import ZoneInfo

    from backups.retention import Retention, points_to_prune

    # 23:30 and 00:30 UTC are the same day in New York (18:30 and 19:30), two days in UTC.
    points = _dated(("late", None, "2026-12-03 23:30"), ("early", None, "2026-12-04 00:30"))
    new_york = points_to_prune(points, Retention(last=1, daily=2), zone=ZoneInfo("America/New_York"))
    assert [point.name for point in new_york] == ["late"]
    from datetime import UTC
    assert points_to_prune(points, Retention(last=1, daily=2), zone=UTC) == []


def test_a_health_checks_temporary_vm_has_no_network_nor_the_hosts_files():
    from virt.healthcheck import _isolated
    from virt.xml.domain import Domain as DomainXML

    xml = DomainXML.from_xml("""<domain type='kvm'><name>vm</name><memory>65536</memory><os><type>hvm</type></os>
      <devices>
        <interface type='network'><source network='default'/></interface>
        <interface type='bridge'><source bridge='br0'/></interface>
        <hostdev mode='subsystem' type='pci'><source><address domain='0' bus='1' slot='0' function='0'/></source></hostdev>
        <filesystem type='mount'><source dir='/srv'/><target dir='srv'/></filesystem>
        <serial type='pty'><target port='0'/></serial>
        <serial type='tcp'><source mode='bind' host='0.0.0.0' service='4555'/><target port='1'/></serial>
        <console type='pty'><target type='serial' port='0'/></console>
        <channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/channel/target/vm.agent'/>
          <target type='virtio' name='org.qemu.guest_agent.0'/></channel>
        <channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>
      </devices></domain>""")
    said = _isolated(xml)
    assert len(xml.interfaces) == len(xml.hostdevs) == len(xml.filesystems) == 0
    assert [serial.type for serial in xml.serials] == ["pty"] and [c.type for c in xml.consoles] == ["pty"]
    (agent,) = xml.channels
    assert agent.target_name == "org.qemu.guest_agent.0" and agent.source_path is None  # libvirt makes a new socket
    assert said == "; 1 host device(s) left out, 1 shared folder(s) left out, a tcp console left out"
