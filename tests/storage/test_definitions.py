"""Pool definitions of every type, built from form input, defined through the handler against
libvirt's test driver (no NFS or iSCSI server can run here), and read back from libvirt."""
import pytest

from hosts.models import Host
from operations.registry import handler_for
from storage.designer import pool_config
from storage.forms import PoolDefineForm
from storage.models import StoragePool
from storage.services import pool_define_enqueue
from virt.connection import pool as connection_pool
from virt.storage import find_pool_sources
from virt.xml.storage import PoolXML

pytestmark = pytest.mark.django_db


@pytest.fixture
def test_host(tmp_path) -> Host:
    path = tmp_path / "node.xml"
    path.write_text("<node></node>\n")
    host = Host.objects.create(name="test-driver", transport="test", address=str(path))
    yield host
    connection_pool().drop(host.uri)


def define_through_vmsite(host: Host, pool_type: str, **fields) -> PoolXML:
    """Validate as the page does, queue, run the handler here, and read libvirt's XML back."""
    form = PoolDefineForm({"name": f"p-{pool_type}", **fields}, host=host, pool_type=pool_type)
    assert form.is_valid(), form.errors
    data = form.cleaned_data
    operation = pool_define_enqueue(host=host, config=pool_config(pool_type=pool_type, data=data),
                                    build=data.get("build", False), start=data["start"],
                                    autostart=data["autostart"], user=None)
    message = handler_for("pool.define")(operation, lambda progress, text: None)
    assert message.startswith(f"Defined p-{pool_type}")
    conn = connection_pool().get(host.uri)
    return PoolXML.from_libvirt(conn.storagePoolLookupByName(f"p-{pool_type}").XMLDesc(0))


def test_it_defines_an_nfs_pool_whose_xml_names_server_export_and_mount_point(test_host):
    xml = define_through_vmsite(test_host, "netfs", source_host="NFS.example.org", source_dir="/export/vms",
                                target_path="/mnt/vms", start="on", autostart="on")
    assert (xml.type, xml.source_host, xml.source_dir, xml.source_format, xml.target_path) == (
        "netfs", "nfs.example.org", "/export/vms", "nfs", "/mnt/vms")
    row = StoragePool.objects.get(host=test_host, name="p-netfs")
    assert row.active and row.pool_type == "netfs" and row.capacity > 0
    assert row.details["source_host"] == "nfs.example.org" and row.details["source_dir"] == "/export/vms"


def test_it_defines_an_iscsi_pool_with_target_port_and_initiator(test_host):
    xml = define_through_vmsite(test_host, "iscsi", source_host="10.0.0.5", source_port="3260",
                                target_iqn="iqn.2024-01.org.example:vms", initiator_iqn="iqn.2024-01.org.example:me")
    assert (xml.type, xml.source_host, xml.source_port, xml.source_devices, xml.initiator_iqn, xml.target_path) == (
        "iscsi", "10.0.0.5", 3260, ["iqn.2024-01.org.example:vms"], "iqn.2024-01.org.example:me",
        "/dev/disk/by-path")
    row = StoragePool.objects.get(host=test_host, name="p-iscsi")
    assert not row.active and row.details["source_devices"] == ["iqn.2024-01.org.example:vms"]


def test_it_builds_the_other_types_definitions(test_host):
    logical = pool_config(pool_type="logical", data={"name": "vg", "vg_name": "vg0",
                                                     "source_devices": ["/dev/sdb", "/dev/sdc"]})
    assert (logical.source_name, logical.source_devices, logical.source_format, logical.target_path) == (
        "vg0", ["/dev/sdb", "/dev/sdc"], "lvm2", "/dev/vg0")
    disk = pool_config(pool_type="disk", data={"name": "d", "source_device": "/dev/sdb", "disk_format": "gpt"})
    assert (disk.source_devices, disk.source_format, disk.target_path) == (["/dev/sdb"], "gpt", "/dev")
    fs = pool_config(pool_type="fs", data={"name": "f", "source_device": "/dev/sdb1", "fs_format": "xfs",
                                           "target_path": "/srv/f"})
    assert (fs.source_devices, fs.source_format, fs.target_path) == (["/dev/sdb1"], "xfs", "/srv/f")
    # Round trip: what vmsite writes, libvirt reads and gives back the same.
    conn = connection_pool().get(test_host.uri)
    for config in (logical, fs):
        back = PoolXML.from_libvirt(conn.storagePoolDefineXML(config.to_xml(), 0).XMLDesc(0))
        assert (back.type, back.source_devices, back.source_format, back.target_path) == (
            config.type, config.source_devices, config.source_format, config.target_path)


def test_a_second_pool_of_the_same_name_is_refused_by_the_handler(test_host):
    define_through_vmsite(test_host, "dir", target_path="/var/lib/libvirt/images")
    StoragePool.objects.filter(host=test_host).delete()  # as if the cache had not caught up yet
    with pytest.raises(Exception, match="already has a storage pool named 'p-dir'"):
        define_through_vmsite(test_host, "dir", target_path="/srv")


def test_it_discovers_nfs_exports_through_libvirt(test_host):
    found = find_pool_sources(connection_pool().get(test_host.uri), "netfs", "nfs.example.org")
    assert found == [{"host": "nfs.example.org", "dir": "/testshare", "device": ""}]


def test_discovery_lists_what_the_server_offers_and_fills_the_form_in(test_host, admin_client):
    from django.urls import reverse

    from operations.models import Operation

    url = reverse("storage:discover", args=[test_host.pk, "netfs"])
    response = admin_client.post(url, {"source_host": "nfs;reboot"})
    assert response.status_code == 400 and b"Not a valid host name" in response.content
    assert not Operation.objects.exists()

    response = admin_client.post(url, {"source_host": "nfs.example.org"})
    assert response.status_code == 302
    operation = Operation.objects.get(kind="pool.discover")
    message = handler_for("pool.discover")(operation, lambda progress, text: None)
    assert message == "nfs.example.org offers 1 export(s)"
    operation.refresh_from_db()
    operation.state = "succeeded"
    operation.save()
    page = admin_client.get(response.url).content.decode()
    assert "?source_host=nfs.example.org&amp;source_dir=/testshare" in page
    form_page = admin_client.get(reverse("storage:define_type", args=[test_host.pk, "netfs"]),
                                 {"source_host": "nfs.example.org", "source_dir": "/testshare"}).content.decode()
    assert 'value="/testshare"' in form_page and 'value="nfs.example.org"' in form_page
