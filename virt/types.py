"""libvirt's handles under the names the rest of vmsite uses in type hints. Code above virt/
hands them back to virt/ functions; it never calls their methods or imports libvirt."""
from libvirt import virConnect as Connection
from libvirt import virDomain as DomainHandle
from libvirt import virNetwork as NetworkHandle
from libvirt import virStorageVol as VolumeHandle

__all__ = ["Connection", "DomainHandle", "NetworkHandle", "VolumeHandle"]
