"""The wizard's way forward on a host with no storage pool or no network: the host's default pool
(a folder pool `default` at /var/lib/libvirt/images) and default NAT network (`default`,
192.168.122.0/24 with DHCP, or the next free /24), made through the same forms and operations as
the storage and network pages, or started when they exist but are stopped.

Who may ask is decided in accounts.access.may_define_pools_and_networks; the view checks it."""
from __future__ import annotations

import ipaddress

from django.contrib.auth.models import AbstractBaseUser
from django.forms import Form

from hosts.models import Host
from networking import services as network_services
from networking.forms import NetworkForm, host_subnets, network_arguments
from networking.models import VirtualNetwork
from operations.models import Operation
from storage import services as storage_services
from storage.designer import pool_config
from storage.forms import PoolDefineForm
from storage.models import StoragePool
from virt.networks import overlapping

DEFAULT_NAME = "default"
DEFAULT_POOL_PATH = "/var/lib/libvirt/images"
# libvirt's own default network, then the /24s after it.
SUBNET_CANDIDATES = [ipaddress.ip_network(f"192.168.{third}.0/24") for third in range(122, 256)]


class OfferRefused(Exception):
    """The default cannot be made (the message says why and what to do instead)."""


def default_pool_enqueue(*, host: Host, user: AbstractBaseUser) -> Operation:
    stopped = StoragePool.objects.filter(host=host, name=DEFAULT_NAME, active=False).first()
    if stopped is not None:
        try:
            return storage_services.pool_action_enqueue(pool=stopped, action="start", user=user)
        except storage_services.StorageBusy as exc:
            raise OfferRefused(f"The pool {DEFAULT_NAME} is {exc}.") from None
    form = PoolDefineForm({"name": DEFAULT_NAME, "target_path": DEFAULT_POOL_PATH, "build": "on", "start": "on",
                           "autostart": "on"}, host=host, pool_type="dir")
    data = _valid(form, "pool")
    return storage_services.pool_define_enqueue(host=host, config=pool_config(pool_type="dir", data=data),
                                                build=True, start=True, autostart=True, user=user)


def default_network_enqueue(*, host: Host, user: AbstractBaseUser) -> Operation:
    stopped = VirtualNetwork.objects.filter(host=host, name=DEFAULT_NAME, active=False).first()
    if stopped is not None:
        try:
            return network_services.network_action_enqueue(network=stopped, action="start", user=user)
        except network_services.NetworkBusy as exc:
            raise OfferRefused(f"The network {DEFAULT_NAME} is {exc}.") from None
    form = NetworkForm({"host": host.pk, "name": DEFAULT_NAME, "mode": "nat", "macvtap_mode": "bridge",
                        "ipv4_subnet": str(free_subnet(host)), "autostart": "on", "start_now": "on"})
    _valid(form, "network")
    return network_services.network_create_enqueue(host=host, user=user, arguments=network_arguments(form))


def free_subnet(host: Host) -> ipaddress.IPv4Network:
    """The first candidate /24 that no network of the host (as last seen) overlaps."""
    taken = host_subnets(host)
    for subnet in SUBNET_CANDIDATES:
        if not overlapping([subnet], taken):
            return subnet
    raise OfferRefused("Every 192.168.x.0/24 from 122 up is taken on this host: define the network "
                       "yourself with another subnet.")


def _valid(form: Form, what: str) -> dict:
    if not form.is_valid():
        problems = "; ".join(message for messages in form.errors.values() for message in messages)
        raise OfferRefused(f"The default {what} cannot be made: {problems}")
    return form.cleaned_data
