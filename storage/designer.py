"""Validated form input turned into a pool definition (the policy; virt/xml/storage.py has none)."""
from __future__ import annotations

from storage.forms import DEFAULT_TARGETS
from virt.xml.storage import PoolXML


def pool_config(*, pool_type: str, data: dict) -> PoolXML:
    xml = PoolXML.new()
    xml.type = pool_type
    xml.name = data["name"]
    if pool_type in ("fs", "disk"):
        xml.source_devices = [data["source_device"]]
    if pool_type == "fs":
        xml.source_format = data["fs_format"]
    if pool_type == "disk":
        xml.source_format = data["disk_format"]
    if pool_type in ("netfs", "iscsi"):
        xml.source_host = data["source_host"]
    if pool_type == "iscsi":
        if data.get("source_port"):
            xml.source_port = data["source_port"]
        xml.source_devices = [data["target_iqn"]]
        if data.get("initiator_iqn"):
            xml.initiator_iqn = data["initiator_iqn"]
    if pool_type == "netfs":
        xml.source_dir = data["source_dir"]
        xml.source_format = "nfs"
    if pool_type == "logical":
        xml.source_name = data["vg_name"]
        xml.source_devices = data.get("source_devices") or None
        xml.source_format = "lvm2"
        xml.target_path = f"/dev/{data['vg_name']}"
    else:
        xml.target_path = data.get("target_path") or DEFAULT_TARGETS[pool_type]
    return xml
