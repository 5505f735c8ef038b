"""Storage pool and volume XML: <pool> and <volume>, in the same object model as domains.

Sizes are written in bytes; reading accepts any unit libvirt knows.
"""
from __future__ import annotations

from virt.xml.base import XMLChildList, XMLObject, XMLProperty, XMLValueList, at_least, one_of
from virt.xml.units import _unit_bytes

POOL_TYPES = ("dir", "fs", "netfs", "logical", "disk", "iscsi")
VOLUME_FORMATS = ("raw", "qcow2", "vmdk", "iso")


# qcow2 v3 ("1.1"; libvirt would make v2, "0.10"): only v3 holds the dirty bitmaps incremental backups need.
QCOW2_COMPAT = "1.1"

class ByteSize(XMLProperty):
    """A size in bytes, whatever unit the XML holds; written back with unit='bytes'."""

    def __init__(self, xpath: str) -> None:
        super().__init__(xpath, int, validate=at_least(0))
        self.unit = XMLProperty(xpath + "/@unit")

    def read(self, obj: XMLObject) -> int | None:
        amount = super().read(obj)
        return None if amount is None else amount * _unit_bytes(self.unit.read(obj) or "bytes")

    def write(self, obj: XMLObject, text: str) -> None:
        super().write(obj, text)
        self.unit.write(obj, "bytes")


class PoolXML(XMLObject):
    """<pool type=...>: only the parts a pool of vmsite's types uses."""

    tag = "pool"
    child_order = {"pool": ("name", "uuid", "capacity", "allocation", "available", "source", "target"),
                   "source": ("host", "device", "dir", "adapter", "name", "format", "initiator")}

    type = XMLProperty("./@type", validate=one_of(*POOL_TYPES))
    name = XMLProperty("./name")
    uuid = XMLProperty("./uuid")
    capacity = ByteSize("./capacity")
    allocation = ByteSize("./allocation")
    available = ByteSize("./available")
    source_host = XMLProperty("./source/host/@name")
    source_port = XMLProperty("./source/host/@port", int, validate=at_least(1))
    source_dir = XMLProperty("./source/dir/@path")
    source_devices = XMLValueList("./source/device/@path")
    source_name = XMLProperty("./source/name")  # the volume group of a logical pool
    source_format = XMLProperty("./source/format/@type")
    initiator_iqn = XMLProperty("./source/initiator/iqn/@name")
    target_path = XMLProperty("./target/path")

    def summary(self) -> dict:
        """What the pool page shows of the definition, as plain data."""
        return {"source_host": self.source_host or "", "source_port": self.source_port,
                "source_dir": self.source_dir or "", "source_devices": self.source_devices,
                "source_name": self.source_name or "", "source_format": self.source_format or "",
                "initiator_iqn": self.initiator_iqn or ""}


class PoolSource(XMLObject):
    """<source> on its own: the question libvirt's source discovery (findStoragePoolSources) is
    asked, and each of its answers."""

    tag = "source"
    child_order = {"source": PoolXML.child_order["source"]}

    host = XMLProperty("./host/@name")
    dir = XMLProperty("./dir/@path")
    devices = XMLValueList("./device/@path")


class PoolSourceList(XMLObject):
    """<sources>: what source discovery found."""

    tag = "sources"

    sources = XMLChildList(PoolSource, "./source")


class VolumeXML(XMLObject):
    tag = "volume"
    child_order = {"volume": ("name", "key", "source", "capacity", "allocation", "physical", "target",
                              "backingStore"),
                   "target": ("path", "format", "permissions", "compat"),
                   "backingStore": ("path", "format")}

    type = XMLProperty("./@type")
    name = XMLProperty("./name")
    key = XMLProperty("./key")
    capacity = ByteSize("./capacity")
    allocation = ByteSize("./allocation")
    physical = ByteSize("./physical")  # a file volume's size on disk (qcow2: not its capacity)
    path = XMLProperty("./target/path")
    format = XMLProperty("./target/format/@type")
    compat = XMLProperty("./target/compat")  # qcow2's version: 0.10 (v2) or 1.1 (v3, which can hold bitmaps)
    backing_path = XMLProperty("./backingStore/path")
    backing_format = XMLProperty("./backingStore/format/@type")
