"""Network filters: define and delete through the pages and the real libvirtd, apply one with a
parameter to a running guest's NIC, and refuse filter XML that is not a plain filter."""
from __future__ import annotations

import libvirt
import pytest
from django.urls import reverse
from lxml import etree

from domains.models import Domain
from inventory.reconcile import host_reconcile
from networking.models import NetworkFilter
from operations.choices import OperationState
from operations.models import Operation
from tests.networking.helpers import (
    LOCAL, NetworkCleanup, define_guest, isolated_network, post_and_wait, succeeded, unique_name, virsh,
)
from virt.nwfilters import check_filter_xml

MAC = "52:54:00:fb:20:01"


def filter_xml(name: str) -> str:
    return (f"<filter name='{name}' chain='ipv4'><rule action='accept' direction='out' priority='500'>"
            "<ip srcipaddr='$IP'/></rule><filterref filter='no-mac-spoofing'/></filter>")


@pytest.mark.parametrize("xml,message", [
    ("<network><name>x</name></network>", "root must be <filter>"),
    ("<!DOCTYPE f [<!ENTITY e 'x'>]><filter name='a'/>", "DOCTYPE"),
    ("<filter name='a'><script/></filter>", "<script> does not belong in a <filter>"),
    ("<filter name='a'><rule action='accept' direction='in'><bogus/></rule></filter>", "<bogus> is not a rule protocol"),
    ("<filter name='a b'/>", "needs a name"),
    ("<filter name='a' chain='nonsense'/>", "is not a filter chain"),
    ("<filter name='a'", "not well-formed"),
])
def test_it_refuses_filter_xml_that_is_not_a_plain_filter(xml, message):
    with pytest.raises(ValueError, match=message):
        check_filter_xml(xml)


@pytest.mark.django_db
def test_it_refuses_bad_filter_xml_on_the_page(admin_client, test_host):
    response = admin_client.post(reverse("networking:filter_add"), {"host": test_host.pk, "xml": "<filter/>"})
    assert response.status_code == 400 and "needs a name" in str(response.context["form"].errors["xml"])
    assert not Operation.objects.exists()


@pytest.fixture
def cleanup():
    networks = NetworkCleanup()
    yield networks
    networks.remove_all()


@pytest.fixture
def filter_name():
    name = unique_name("f-")
    yield name
    conn = libvirt.open(LOCAL)
    try:
        conn.nwfilterLookupByName(name).undefine()
    except libvirt.libvirtError:
        pass


def live_filterref(guest: libvirt.virDomain, flags: int = 0) -> etree._Element | None:
    root = etree.fromstring(guest.XMLDesc(flags))
    return root.find(f"devices/interface/mac[@address='{MAC}']/../filterref")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_defines_a_filter_applies_it_to_a_running_nic_and_deletes_it(celery_worker, local_host, guests, cleanup,
                                                                        filter_name, admin_client):
    network = isolated_network(libvirt.open(LOCAL), cleanup, 31)
    guest = define_guest(guests)
    guest.attachDeviceFlags(f"<interface type='network'><mac address='{MAC}'/><source network='{network}'/>"
                            "<model type='virtio'/><rom enabled='no'/></interface>", libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    guest.create()
    host_reconcile(host=local_host)
    domain = Domain.objects.get(host=local_host, uuid=guest.UUIDString())

    operation = succeeded(post_and_wait(admin_client, reverse("networking:filter_add"),
                                        {"host": local_host.pk, "xml": filter_xml(filter_name)}))
    assert operation.message == f"Defined the filter {filter_name}"
    dumped = etree.fromstring(virsh("nwfilter-dumpxml", filter_name))
    assert dumped.get("chain") == "ipv4" and dumped.find("rule/ip").get("srcipaddr") == "$IP"
    row = NetworkFilter.objects.get(host=local_host, name=filter_name)
    assert (row.chain, row.rule_count, row.references) == ("ipv4", 1, ["no-mac-spoofing"])
    assert admin_client.get(reverse("networking:filter_detail", args=[row.pk])).status_code == 200

    operation = succeeded(post_and_wait(admin_client, reverse("domains:config_nic_filter", args=[domain.pk]), {
        "mac": MAC, "filter": filter_name, "parameters": "IP=10.251.31.5", "live": "on", "persistent": "on"}))
    assert operation.message == f"NIC {MAC}: filter {filter_name}, live and persistently"
    for flags in (0, libvirt.VIR_DOMAIN_XML_INACTIVE):
        ref = live_filterref(guest, flags)
        assert ref.get("filter") == filter_name
        assert ref.find("parameter").attrib == {"name": "IP", "value": "10.251.31.5"}

    # In use: libvirt refuses to delete it, and the operation says why.
    operation = post_and_wait(admin_client, reverse("networking:filter_delete", args=[row.pk]))
    assert operation.state == OperationState.FAILED and "is in use" in operation.error
    assert filter_name in virsh("nwfilter-list")

    succeeded(post_and_wait(admin_client, reverse("domains:config_nic_filter", args=[domain.pk]),
                            {"mac": MAC, "filter": "", "live": "on", "persistent": "on"}))
    assert live_filterref(guest) is None and live_filterref(guest, libvirt.VIR_DOMAIN_XML_INACTIVE) is None

    succeeded(post_and_wait(admin_client, reverse("networking:filter_delete", args=[row.pk])))
    assert filter_name not in virsh("nwfilter-list")
    assert not NetworkFilter.objects.filter(host=local_host, name=filter_name).exists()


@pytest.mark.django_db
def test_it_refuses_bad_filter_parameters_on_a_nic(local_host, guests, cleanup, admin_client):
    guest = define_guest(guests)
    guest.attachDeviceFlags(f"<interface type='network'><mac address='{MAC}'/><source network='default'/>"
                            "<rom enabled='no'/></interface>", libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    host_reconcile(host=local_host, fresh=True)
    domain = Domain.objects.get(host=local_host, uuid=guest.UUIDString())
    url = reverse("domains:config_nic_filter", args=[domain.pk])
    for data, field, message in [
        ({"filter": "clean-traffic", "parameters": "IP=10.251.999.1"}, "parameters", "is not an IP address"),
        ({"filter": "clean-traffic", "parameters": "ip=10.251.1.1"}, "parameters", "upper-case name"),
        ({"filter": "no-such-filter"}, "filter", "is not a network filter of this VM's host"),
        ({"filter": "", "parameters": "IP=10.251.1.1"}, "parameters", "Parameters need a filter."),
    ]:
        response = admin_client.post(url, {"mac": MAC, "persistent": "on", **data})
        assert response.status_code == 400
        assert message in " ".join(response.context["form"].errors[field])
    assert not Operation.objects.exists()
