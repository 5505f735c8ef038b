"""<domainbackup> and <domaincheckpoint>: the XML of one backup job and of one checkpoint.

A push-mode backup names, per disk, the file the copy goes to; an incremental one also names the
checkpoint it starts from. A pull-mode one (only the backups benchmark makes one: vmsite backs up in
push mode) names the NBD server that exports the disks and, per disk, its copy-before-write scratch file. A checkpoint names the disks whose changes a persistent qcow2 dirty
bitmap records from now on (libvirt's formatbackup and formatcheckpoint pages).
"""
from __future__ import annotations

from virt.xml.base import XMLChildList, XMLObject, XMLProperty, at_least, one_of


class BackupDisk(XMLObject):
    """<disk name='vda' backup='yes' type='file'><driver type='qcow2'/><target file='...'/></disk>"""

    tag = "disk"
    child_order = {"disk": ("driver", "target", "scratch")}

    name = XMLProperty("./@name")  # the disk's target device
    backup = XMLProperty("./@backup", bool)
    type = XMLProperty("./@type", validate=one_of("file", "block"))
    backup_mode = XMLProperty("./@backupmode", validate=one_of("full", "incremental"))  # as libvirt reports it
    target_file = XMLProperty("./target/@file")
    scratch_file = XMLProperty("./scratch/@file")  # pull mode
    driver_type = XMLProperty("./driver/@type", validate=one_of("raw", "qcow2"))


class BackupXML(XMLObject):
    tag = "domainbackup"
    child_order = {"domainbackup": ("incremental", "server", "disks")}

    mode = XMLProperty("./@mode", validate=one_of("push", "pull"))
    incremental = XMLProperty("./incremental")  # the checkpoint the changes are counted from
    server_transport = XMLProperty("./server/@transport", validate=one_of("tcp", "unix"))  # pull mode
    server_socket = XMLProperty("./server/@socket")  # pull mode over a UNIX socket
    disks = XMLChildList(BackupDisk, "./disks/disk")

    def add_file_disk(self, *, name: str, target_file: str, driver_type: str) -> BackupDisk:
        disk = self.disks.add()
        disk.name = name
        disk.backup = True
        disk.type = "file"
        disk.driver_type = driver_type
        disk.target_file = target_file
        return disk

    def add_scratch_disk(self, *, name: str, scratch_file: str) -> BackupDisk:
        """A disk a pull-mode job exports, its guest's writes meanwhile copied first into scratch_file."""
        disk = self.disks.add()
        disk.name = name
        disk.backup = True
        disk.type = "file"
        disk.scratch_file = scratch_file
        return disk

    def skip_disk(self, name: str) -> None:
        disk = self.disks.add()
        disk.name = name
        disk.backup = False


class CheckpointDisk(XMLObject):
    """<disk name='vda' checkpoint='bitmap' bitmap='cp1' size='1048576'/>"""

    tag = "disk"

    name = XMLProperty("./@name")
    checkpoint = XMLProperty("./@checkpoint", validate=one_of("bitmap", "no"))
    bitmap = XMLProperty("./@bitmap")
    size = XMLProperty("./@size", int, validate=at_least(0))  # bytes changed since, with XML_SIZE only


class CheckpointXML(XMLObject):
    tag = "domaincheckpoint"
    child_order = {"domaincheckpoint": ("name", "description", "parent", "creationTime", "disks", "domain")}

    name = XMLProperty("./name")
    description = XMLProperty("./description")
    parent_name = XMLProperty("./parent/name")
    creation_time = XMLProperty("./creationTime", int)
    disks = XMLChildList(CheckpointDisk, "./disks/disk")

    def add_disk(self, name: str, *, bitmap: bool) -> CheckpointDisk:
        disk = self.disks.add()
        disk.name = name
        disk.checkpoint = "bitmap" if bitmap else "no"
        return disk

    def disk(self, name: str) -> CheckpointDisk | None:
        return next((disk for disk in self.disks if disk.name == name), None)
