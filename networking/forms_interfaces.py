"""Forms for host interfaces (bridges, VLANs, bonds) and network filters."""
from __future__ import annotations

import ipaddress

from django import forms
from django.core.exceptions import ValidationError

from hosts.models import Host
from networking.models import HostInterface, NetworkFilter
from networking.validators import clean_interface_name, clean_vlan_id
from virt.interfaces import BOND_MODES, READ_ONLY_MESSAGE
from virt.nwfilters import check_filter_xml
from virt.xml.base import XMLRejected


def interface_define_supported(host: Host) -> bool | None:
    """True/False as last probed on the host; None when not known yet (never connected)."""
    return (host.capabilities or {}).get("interface_define")


def known_interfaces(host: Host) -> set[str]:
    """The host's interfaces as last read, with those inside its bridges and bonds."""
    known = set()
    for name, details in HostInterface.objects.filter(host=host).values_list("name", "details"):
        known.add(name)
        known.update(details.get("members") or [])
    return known


class InterfaceForm(forms.Form):
    host = forms.ModelChoiceField(queryset=Host.objects.filter(enabled=True), error_messages={
        "invalid_choice": "Pick one of the registered hosts."})
    kind = forms.ChoiceField(choices=[("bridge", "Bridge"), ("vlan", "VLAN"), ("bond", "Bond")])
    name = forms.CharField(max_length=64, help_text="At most 15 characters, like br1, eth0.42 or bond0.")
    members = forms.CharField(required=False, max_length=500,
                              help_text="Bridge and bond: the host interfaces inside, separated by spaces.")
    vlan = forms.IntegerField(required=False, label="VLAN id", error_messages={"invalid": "Give the VLAN id as a number."})
    parent = forms.CharField(required=False, max_length=64, label="VLAN parent interface")
    bond_mode = forms.ChoiceField(choices=[(mode, mode) for mode in BOND_MODES], initial="active-backup")
    stp = forms.BooleanField(required=False, label="Spanning tree (bridge)")
    ipv4 = forms.CharField(required=False, max_length=64, label="IPv4",
                           help_text="Empty: no address; 'dhcp'; or an address with its prefix, like 10.251.9.2/24.")
    mtu = forms.IntegerField(required=False, label="MTU", min_value=68, max_value=65535)
    start = forms.BooleanField(required=False, initial=True, label="Start it now")

    def clean_name(self) -> str:
        return clean_interface_name(self.cleaned_data["name"], what="interface")

    def clean_members(self) -> list[str]:
        return [clean_interface_name(name, what="interface") for name in self.cleaned_data["members"].split()]

    def clean_vlan(self) -> int | None:
        vlan = self.cleaned_data["vlan"]
        return None if vlan is None else clean_vlan_id(vlan)

    def clean_parent(self) -> str:
        value = self.cleaned_data["parent"].strip()
        return clean_interface_name(value, what="interface") if value else ""

    def clean_ipv4(self) -> str | None:
        value = self.cleaned_data["ipv4"].strip()
        if not value:
            return None
        if value == "dhcp":
            return value
        try:
            address = ipaddress.IPv4Interface(value)
        except ValueError:
            raise ValidationError(f"{value!r} is not 'dhcp' nor an IPv4 address with its prefix, like "
                                  "10.251.9.2/24.") from None
        if "/" not in value:
            raise ValidationError(f"Give the prefix too, like {value}/24.")
        return str(address)

    def clean(self) -> dict:
        data = super().clean()
        host = data.get("host")
        if host is not None and interface_define_supported(host) is False:
            raise ValidationError(READ_ONLY_MESSAGE)
        kind = data.get("kind")
        known = known_interfaces(host) if host else set()
        if kind == "vlan":
            if data.get("vlan") is None and not self.has_error("vlan"):
                self.add_error("vlan", "Give the VLAN id (1-4094).")
            if not data.get("parent") and not self.has_error("parent"):
                self.add_error("parent", "Give the interface that carries the VLAN, like eth0.")
            elif data.get("parent") and data["parent"] not in known:
                self.add_error("parent", f"The host {host} has no interface {data['parent']!r}.")
        elif kind in ("bridge", "bond"):
            if kind == "bond" and len(data.get("members") or []) < 1 and not self.has_error("members"):
                self.add_error("members", "A bond needs at least one member.")
            for member in data.get("members") or []:
                if member not in known:
                    self.add_error("members", f"The host {host} has no interface {member!r}.")
        return data


def interface_arguments(form: InterfaceForm) -> dict:
    data = form.cleaned_data
    return {"kind": data["kind"], "name": data["name"], "members": data.get("members") or [],
            "vlan": data.get("vlan"), "parent": data.get("parent") or None, "bond_mode": data["bond_mode"],
            "stp": bool(data.get("stp")), "ipv4": data.get("ipv4"), "mtu": data.get("mtu"),
            "start": bool(data.get("start"))}


class FilterForm(forms.Form):
    host = forms.ModelChoiceField(queryset=Host.objects.filter(enabled=True), error_messages={
        "invalid_choice": "Pick one of the registered hosts."})
    xml = forms.CharField(strip=False, widget=forms.Textarea(attrs={"rows": 16}), label="Filter XML")

    def clean_xml(self) -> str:
        try:
            check_filter_xml(self.cleaned_data["xml"])
        except (XMLRejected, ValueError) as exc:
            raise ValidationError(str(exc)) from None
        return self.cleaned_data["xml"]

