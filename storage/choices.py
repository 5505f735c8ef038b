from django.db import models

POOL_TYPE_LABELS = {
    "dir": "Folder (image files)",
    "fs": "Formatted block device",
    "netfs": "NFS share",
    "logical": "LVM volume group",
    "disk": "Disk partitions",
    "iscsi": "iSCSI target",
}
POOL_TYPES = tuple(POOL_TYPE_LABELS)

VOLUME_FORMAT_LABELS = {"qcow2": "qcow2 (thin, snapshots, backing files)", "raw": "raw", "vmdk": "vmdk (VMware)"}
# Pool types whose volumes are image files, where the format can be chosen.
FILE_POOL_TYPES = ("dir", "fs", "netfs")


class UploadState(models.TextChoices):
    NONE = "", "complete"
    UPLOADING = "uploading", "upload in progress"
    INCOMPLETE = "incomplete", "upload cut off: contents are partial"
