"""<domainsnapshot>: the XML of one domain snapshot, to build a new one and to read libvirt's."""
from __future__ import annotations

from virt.xml.base import XMLChildList, XMLObject, XMLProperty, one_of

SNAPSHOT_MODES = ("no", "internal", "external", "manual")


class SnapshotDisk(XMLObject):
    """One disk of a snapshot: <disk name='vda' snapshot='internal'/>."""

    tag = "disk"

    name = XMLProperty("./@name")  # the disk's target device, e.g. vda
    snapshot = XMLProperty("./@snapshot", validate=one_of(*SNAPSHOT_MODES))


class DomainSnapshot(XMLObject):
    tag = "domainsnapshot"
    # As libvirt writes them (src/conf/snapshot_conf.c).
    child_order = {"domainsnapshot": ("name", "description", "state", "parent", "creationTime", "memory",
                                      "disks", "domain")}

    name = XMLProperty("./name")
    description = XMLProperty("./description")
    state = XMLProperty("./state")  # the domain's state when the snapshot was taken: running, shutoff...
    parent_name = XMLProperty("./parent/name")
    creation_time = XMLProperty("./creationTime", int)  # seconds since the epoch
    memory_snapshot = XMLProperty("./memory/@snapshot", validate=one_of(*SNAPSHOT_MODES))
    disks = XMLChildList(SnapshotDisk, "./disks/disk")

    @property
    def has_memory(self) -> bool:
        return self.memory_snapshot in ("internal", "external")
