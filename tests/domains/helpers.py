"""What the VM tests share: the main host, and a guest's row as vmsite caches it."""
import libvirt

from domains.models import Domain
from hosts.models import Host
from inventory.reconcile import host_reconcile

LOCAL = "qemu:///system"
# Names every VM-naming form must refuse (the domains issue's bad-input list).
BAD_NAMES = ["<b>", "a>b", "a&b", 'a"b', "a'b", "a/b", "a b", " lead", "x" * 300, ""]


def cached(local_host: Host, guest: libvirt.virDomain) -> Domain:
    """The guest's Domain row after a reconcile of its host."""
    host_reconcile(host=local_host)
    return Domain.objects.select_related("host").get(host=local_host, uuid=guest.UUIDString())
