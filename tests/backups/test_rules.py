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
