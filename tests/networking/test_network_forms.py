"""Every bad input of the network pages is refused with a clear message, and nothing is queued."""
from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Grant, Role
from networking.models import VirtualNetwork
from operations.models import Operation

pytestmark = pytest.mark.django_db


def post_network(client, host, **fields):
    data = {"host": host.pk, "name": "lab", "mode": "nat", "macvtap_mode": "bridge", "ipv4_subnet": "10.251.1.0/24",
            **fields}
    return client.post(reverse("networking:add"), {k: v for k, v in data.items() if v is not None})


def refused(response) -> dict:
    assert response.status_code == 400
    assert not Operation.objects.exists()
    errors = response.context["form"].errors
    return {field: " ".join(messages) for field, messages in errors.items()}


def test_it_queues_a_valid_network_with_its_arguments(admin_client, test_host):
    response = post_network(admin_client, test_host, ipv4_dhcp_start="10.251.1.10", ipv4_dhcp_end="10.251.1.20",
                            domain="lab.example", mtu="1400", dns_hosts="10.251.1.5 db\n", start_now="on")
    assert response.status_code == 302
    operation = Operation.objects.get()
    assert operation.kind == "network.create" and operation.target_id == test_host.pk
    assert operation.arguments["ipv4"] == {"gateway": "10.251.1.1", "prefix": 24, "dhcp_start": "10.251.1.10",
                                           "dhcp_end": "10.251.1.20"}
    assert operation.arguments["dns_hosts"] == [["10.251.1.5", "db"]]


@pytest.mark.parametrize("subnet,message", [
    ("10.251.1.0", "is not a subnet in CIDR form"),
    ("10.251.1.0/33", "not a valid IPv4 subnet"),
    ("10.251.300.0/24", "not a valid IPv4 subnet"),
    ("banana/24", "not a valid IPv4 subnet"),
    ("10.251.1.7/24", "has host bits set: write the subnet's first address, like 10.251.1.0/24"),
    ("fd00::/64", "is not an IPv4 subnet"),
    ("10.251.1.0/31", "not usable here"),
])
def test_it_refuses_invalid_cidrs(admin_client, test_host, subnet, message):
    assert message in refused(post_network(admin_client, test_host, ipv4_subnet=subnet))["ipv4_subnet"]


@pytest.mark.parametrize(("field", "address"), [("ipv6_gateway", "fd00:251:1::1%eth0"),
                                                ("ipv6_dhcp_start", "fd00:251:1::10%x#y")])
def test_it_refuses_ipv6_addresses_with_a_zone(admin_client, test_host, field, address):
    fields = {"ipv6_subnet": "fd00:251:1::/64", "ipv6_dhcp_start": "fd00:251:1::10", "ipv6_dhcp_end": "fd00:251:1::20",
              field: address}
    errors = refused(post_network(admin_client, test_host, **fields))
    assert "without a zone" in " ".join(errors.values())


def test_it_refuses_an_invalid_ipv6_cidr(admin_client, test_host):
    errors = refused(post_network(admin_client, test_host, ipv6_subnet="fd00:251::1::/64"))
    assert "not a valid IPv6 subnet" in errors["ipv6_subnet"]


@pytest.mark.parametrize("gateway,message", [
    ("10.251.2.1", "The gateway 10.251.2.1 is outside the subnet 10.251.1.0/24."),
    ("10.251.1.0", "is the subnet's network address"),
    ("10.251.1.255", "is the subnet's broadcast address"),
    ("fd00::1", "is not an IPv4 address"),
])
def test_it_refuses_a_gateway_outside_its_subnet(admin_client, test_host, gateway, message):
    assert message in refused(post_network(admin_client, test_host, ipv4_gateway=gateway))["ipv4_gateway"]


@pytest.mark.parametrize("start,end,field,message", [
    ("10.251.2.10", "10.251.2.20", "ipv4_dhcp_start", "The DHCP range start 10.251.2.10 is outside the subnet"),
    ("10.251.1.10", "10.251.9.20", "ipv4_dhcp_start", "The DHCP range end 10.251.9.20 is outside the subnet"),
    ("10.251.1.200", "10.251.1.100", "ipv4_dhcp_start", "The DHCP range is reversed: 10.251.1.200 comes after"),
    ("10.251.1.1", "10.251.1.100", "ipv4_dhcp_start", "holds the gateway 10.251.1.1"),
    ("10.251.1.10", "", "ipv4_dhcp_end", "Give both ends of the DHCP range"),
])
def test_it_refuses_a_dhcp_range_outside_the_subnet_or_reversed(admin_client, test_host, start, end, field, message):
    errors = refused(post_network(admin_client, test_host, ipv4_dhcp_start=start, ipv4_dhcp_end=end))
    assert message in errors[field]


def test_it_refuses_a_subnet_overlapping_a_network_already_on_the_host(admin_client, test_host):
    # 'outside' was defined on the host without vmsite; the reconcile cached its subnet.
    errors = refused(post_network(admin_client, test_host, ipv4_subnet="10.251.200.0/25"))
    assert errors["__all__"] == ("Subnets may not overlap another network of the same host: "
                                 "10.251.200.0/25 overlaps 10.251.200.0/24 of the network outside.")


def test_it_accepts_the_same_subnet_on_another_host(admin_client, test_host, node_file, tmp_path):
    from hosts.models import Host
    other = Host.objects.create(name="other", transport="test", address="default")
    assert post_network(admin_client, other, ipv4_subnet="10.251.200.0/24").status_code == 302


def test_it_refuses_a_network_name_already_used(admin_client, test_host):
    errors = refused(post_network(admin_client, test_host, name="outside", ipv4_subnet="10.251.5.0/24"))
    assert errors["name"] == "The host demo already has a network named 'outside'."


@pytest.mark.parametrize("name", ["a/b", "a b", "<x>", "", "x" * 65, "-lead"])
def test_it_refuses_unusable_network_names(admin_client, test_host, name):
    assert refused(post_network(admin_client, test_host, name=name))["name"]


@pytest.mark.parametrize("bridge,message", [
    ("virbr0123456789x", "is 16 characters long: Linux bridge names have at most 15"),
    ("br/0", "contains '/' or a space"),
    ("br 0", "contains '/' or a space"),
    ("br;reboot", "is not a usable bridge name"),
    ("br$(id)", "is not a usable bridge name"),
    ("br`x`", "is not a usable bridge name"),
    ("br0|x", "is not a usable bridge name"),
    ("br>0", "is not a usable bridge name"),
])
def test_it_refuses_bad_bridge_names(admin_client, test_host, bridge, message):
    assert message in refused(post_network(admin_client, test_host, bridge=bridge))["bridge"]
    assert message in refused(post_network(admin_client, test_host, mode="bridge", ipv4_subnet="",
                                            bridge=bridge))["bridge"]


@pytest.mark.parametrize("vlan", ["0", "4095", "-3", "70000"])
def test_it_refuses_vlan_ids_outside_1_to_4094(admin_client, test_host, vlan):
    errors = refused(post_network(admin_client, test_host, mode="bridge", bridge="br0", ipv4_subnet="",
                                  portgroups=f"web {vlan}"))
    assert f"VLAN id {vlan} is outside 1-4094." in errors["portgroups"]


@pytest.mark.parametrize("portgroups", ["web --5", "web ²", "web ١٠", "web 10 ² 1", "web " + "9" * 5000])
def test_it_refuses_port_group_numbers_that_are_not_plain_digits(admin_client, test_host, portgroups):
    errors = refused(post_network(admin_client, test_host, mode="bridge", bridge="br0", ipv4_subnet="",
                                  portgroups=portgroups))
    assert "write a port group's name and its VLAN id" in errors["portgroups"]


def test_it_accepts_vlan_ids_at_the_edges(admin_client, test_host):
    response = post_network(admin_client, test_host, mode="bridge", bridge="br0", ipv4_subnet="", openvswitch="on",
                            portgroups="low 1\nhigh 4094")
    assert response.status_code == 302
    assert Operation.objects.get().arguments["portgroups"] == [["low", 1, None, None], ["high", 4094, None, None]]


def test_it_takes_qos_per_port_group_and_refuses_a_repeated_group(admin_client, test_host):
    errors = refused(post_network(admin_client, test_host, mode="bridge", bridge="br0", ipv4_subnet="",
                                  portgroups="web 10 0 5"))
    assert "at least 1 KiB/s" in errors["portgroups"]
    errors = refused(post_network(admin_client, test_host, mode="bridge", bridge="br0", ipv4_subnet="",
                                  portgroups="web 10\nweb 11"))
    assert "given twice" in errors["portgroups"]
    response = post_network(admin_client, test_host, mode="bridge", bridge="br0", ipv4_subnet="",
                            portgroups="web 10 1000 500")
    assert response.status_code == 302
    assert Operation.objects.get().arguments["portgroups"] == [["web", 10, 1000, 500]]


def test_it_refuses_addresses_on_bridge_and_macvtap_networks(admin_client, test_host):
    errors = refused(post_network(admin_client, test_host, mode="bridge", bridge="br0"))
    assert "have no subnets" in errors["ipv4_subnet"]
    errors = refused(post_network(admin_client, test_host, mode="macvtap", ipv4_subnet=""))
    assert errors["forward_dev"] == "Give the host interface to share, like eth0."


def test_it_refuses_an_mtu_out_of_range(admin_client, test_host):
    assert "between 68 and 65535" in refused(post_network(admin_client, test_host, mtu="20"))["mtu"]
    errors = refused(post_network(admin_client, test_host, mtu="1000", ipv6_subnet="fd00:251:9::/64"))
    assert "IPv6 needs at least 1280" in errors["mtu"]


def test_it_refuses_a_nat_network_without_a_subnet(admin_client, test_host):
    assert "needs a subnet" in refused(post_network(admin_client, test_host, ipv4_subnet=""))["ipv4_subnet"]


def test_it_refuses_dns_entries_that_are_malformed_or_outside(admin_client, test_host):
    assert "Line 1" in refused(post_network(admin_client, test_host, dns_hosts="10.251.1.5"))["dns_hosts"]
    assert "not a host name" in refused(post_network(admin_client, test_host, dns_hosts="10.251.1.5 a_b"))["dns_hosts"]
    errors = refused(post_network(admin_client, test_host, dns_hosts="10.9.9.9 far"))
    assert "outside the network's subnets" in errors["dns_hosts"]


# ---------------------------------------------------------------------------------------------
# Static leases


def post_lease(client, network, **fields):
    data = {"mac": "52:54:00:aa:00:09", "ip": "10.251.200.50", "hostname": "", **fields}
    return client.post(reverse("networking:lease_add", args=[network.pk]), data)


def lease_errors(response) -> dict:
    assert response.status_code == 400
    assert not Operation.objects.exists()
    return {field: " ".join(messages) for field, messages in response.context["lease_form"].errors.items()}


@pytest.mark.parametrize("ip,message", [
    ("10.251.201.50", "10.251.201.50 is outside the network's subnets (10.251.200.0/24)."),
    ("10.251.200.255", "broadcast address"),
    ("10.251.200.1", "is the host's own address on this network"),
    ("10.251.200.5", "10.251.200.5 is already the static lease of 52:54:00:aa:00:01."),
    ("nonsense", "is not an IP address"),
])
def test_it_refuses_a_static_lease_outside_the_subnet_or_duplicating_an_ip(admin_client, test_host, ip, message):
    network = VirtualNetwork.objects.get(host=test_host, name="outside")
    assert message in lease_errors(post_lease(admin_client, network, ip=ip))["ip"]


@pytest.mark.parametrize("mac,message", [
    ("52:54:00:AA:00:01", "52:54:00:aa:00:01 already has a static lease on this network (10.251.200.5)."),
    ("01:00:5e:00:00:01", "multicast"),
    ("52:54:00:aa:00", "is not a MAC address"),
])
def test_it_refuses_a_static_lease_duplicating_a_mac_or_with_a_bad_mac(admin_client, test_host, mac, message):
    network = VirtualNetwork.objects.get(host=test_host, name="outside")
    assert message in lease_errors(post_lease(admin_client, network, mac=mac))["mac"]


def test_it_queues_a_valid_static_lease(admin_client, test_host):
    network = VirtualNetwork.objects.get(host=test_host, name="outside")
    response = post_lease(admin_client, network, hostname="web9")
    assert response.status_code == 302
    assert Operation.objects.get().arguments == {"mac": "52:54:00:aa:00:09", "ip": "10.251.200.50",
                                                 "hostname": "web9"}


def test_it_refuses_network_changes_without_permission(client, django_user_model, test_host):
    user = django_user_model.objects.create_user("viewer", password="pw")
    Grant.objects.create(user=user, host=test_host, role=Role.VIEWER)
    client.force_login(user)
    network = VirtualNetwork.objects.get(host=test_host, name="outside")
    assert client.get(reverse("networking:detail", args=[network.pk])).status_code == 200
    assert post_lease(client, network).status_code == 403
    assert client.post(reverse("networking:action", args=[network.pk, "stop"])).status_code == 403
    assert post_network(client, test_host).status_code == 403
    assert not Operation.objects.exists()


def test_it_refuses_a_change_by_get(admin_client, test_host):
    network = VirtualNetwork.objects.get(host=test_host, name="outside")
    assert admin_client.get(reverse("networking:action", args=[network.pk, "stop"])).status_code == 405


def test_it_refuses_a_delete_without_the_networks_name(admin_client, test_host):
    network = VirtualNetwork.objects.get(host=test_host, name="outside")
    response = admin_client.post(reverse("networking:delete", args=[network.pk]), {"confirm_name": "outsid"})
    assert response.status_code == 400 and not Operation.objects.exists()


@pytest.mark.parametrize("fields,field,message", [
    ({"ip": "10.251.9.9", "hostname": "db"}, "ip", "outside the network's subnets"),
    ({"ip": "10.251.200.9", "hostname": "-db"}, "hostname", "is not a host name"),
])
def test_it_refuses_bad_dns_entries(admin_client, test_host, fields, field, message):
    network = VirtualNetwork.objects.get(host=test_host, name="outside")
    response = admin_client.post(reverse("networking:dns_add", args=[network.pk]), fields)
    assert response.status_code == 400 and not Operation.objects.exists()
    assert message in " ".join(response.context["dns_form"].errors[field])


def test_it_edits_only_what_a_bridge_network_has(admin_client, test_host):
    network = VirtualNetwork.objects.get(host=test_host, name="outside")
    VirtualNetwork.objects.filter(pk=network.pk).update(mode="bridge")
    response = admin_client.post(reverse("networking:edit", args=[network.pk]), {"mtu": "1400"})
    assert response.status_code == 400 and "only QoS" in str(response.context["form"].non_field_errors())


def test_it_refuses_a_bridge_that_another_network_of_the_host_makes(admin_client, test_host):
    errors = refused(post_network(admin_client, test_host, bridge="virbr9"))
    assert errors["bridge"].startswith("The bridge virbr9 belongs to the network outside")


@pytest.mark.parametrize("subnet,gateway,expected", [
    ("10.251.1.0/24", None, ("10.251.1.2", "10.251.1.254")),
    ("10.251.1.0/24", "10.251.1.254", ("10.251.1.1", "10.251.1.253")),
    ("10.251.1.0/24", "10.251.1.100", ("10.251.1.101", "10.251.1.254")),
    ("10.251.1.0/30", None, ("10.251.1.2", "10.251.1.2")),
])
def test_it_gives_an_ipv4_subnet_a_dhcp_range_beside_the_gateway_when_none_is_given(admin_client, test_host, subnet,
                                                                                   gateway, expected):
    assert post_network(admin_client, test_host, ipv4_subnet=subnet, ipv4_gateway=gateway).status_code == 302
    ipv4 = Operation.objects.get().arguments["ipv4"]
    assert (ipv4["dhcp_start"], ipv4["dhcp_end"]) == expected


def test_it_gives_no_dhcp_when_asked_and_refuses_no_dhcp_with_a_range_or_without_a_subnet(admin_client, test_host):
    errors = refused(post_network(admin_client, test_host, ipv4_no_dhcp="on", ipv4_dhcp_start="10.251.1.10",
                                  ipv4_dhcp_end="10.251.1.20"))
    assert "Either give a DHCP range or choose no DHCP" in errors["ipv4_no_dhcp"]
    errors = refused(post_network(admin_client, test_host, mode="isolated", ipv4_subnet="", ipv4_no_dhcp="on"))
    assert "No DHCP applies to an IPv4 subnet" in errors["ipv4_no_dhcp"]
    assert post_network(admin_client, test_host, ipv4_no_dhcp="on").status_code == 302
    ipv4 = Operation.objects.get().arguments["ipv4"]
    assert ipv4["dhcp_start"] is None and ipv4["dhcp_end"] is None
