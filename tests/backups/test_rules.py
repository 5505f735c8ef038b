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
    good = {"format": MANIFEST_FORMAT, "version": 1, "vm": {"uuid": "6695eb01-f6a4-8304-79aa-97f2502e193f",
                                                           "name": "vm"},
            "name": "20261204-120000", "kind": "full", "parent": None, "chain": "6695eb01-f6a4-8304-79aa-97f2502e1944",
            "checkpoint": "", "created_at": "2026-12-04T12:00:00+00:00", "consistency": "x", "note": "", "seconds": 1,
            "domain_xml": "<domain/>",
            "disks": [{"target": "vda", "source": "/a", "volume": "v", "path": "/p/v", "format": "qcow2",
                       "capacity": 1, "size": 1, "sha256": "a" * 64}]}
    assert parse_manifest(json.dumps(good).encode())["name"] == "20261204-120000"
    for broken in ({**good, "format": "other"}, {**good, "version": 2}, {**good, "disks": []},
                   {**good, "kind": "weekly"}, {**good, "disks": [{"target": "vda"}]}):
        with pytest.raises(ManifestInvalid):
            parse_manifest(json.dumps(broken).encode())
    with pytest.raises(ManifestInvalid):
        parse_manifest(b"\xff not json")


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
