"""Validation of every change a user can ask for on a VM: each error says what is wrong and what to do.

The choices (pools, networks, disks, NICs) come from the database's cached rows for the VM's host;
the worker checks again against the host as it is when it acts.
"""
from __future__ import annotations

import re

from django import forms
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError

from accounts.access import may_rewire_nics

from domains.choices import nic_model_choices
from domains.forms import validate_domain_name
from domains.models import Domain
from networking.models import VirtualNetwork
from networking.selectors import mac_in_use
from networking.validators import clean_mac
from accounts.access import new_volume_refusal, pools_for_new_volume, volume_use_refusal
from storage.choices import FILE_POOL_TYPES
from storage.forms import SizeField
from storage.models import StoragePool, Volume
from storage.selectors import volume_offers, volume_users
from virt.xml.base import XMLRejected, check_xml_text, parse_trusted, parse_untrusted
from virt.xml.domain import MAX_TAGS, TAG_PATTERN, TAG_RULE
from virt.xml.policy import HostContext, check_domain_xml, nvram_path, volume_paths
from vmsite.units import binary_size

VOLUME_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._+-]{0,254}\Z")
VOLUME_RULE = "Give a volume's name in the pool (letters, digits, '.', '_', '+' or '-'), not a path."
BUSES = [("virtio", "virtio"), ("sata", "SATA"), ("scsi", "SCSI"), ("usb", "USB")]
# NIC models that are conventional PCI devices: a q35 VM's PCIe root ports do not take them live.
CONVENTIONAL_PCI_NIC_MODELS = ("e1000", "rtl8139")
DISK_SOURCES = [("existing", "An existing volume"), ("new", "A new volume")]
NEW_DISK_FORMATS = [("qcow2", "qcow2 (thin)"), ("raw", "raw")]
BOOT_DEVICES = [("hd", "Hard disk"), ("cdrom", "CD-ROM"), ("network", "Network (PXE)"), ("fd", "Floppy")]
MAC_TAKEN = "The MAC {mac} is already used by another VM on this host: choose another, or leave it empty."
HOST_OPERATOR_NETWORK = ("Moving a NIC to another network needs an operator's right on the host: "
                         "your grant is on this VM only.")
TITLE_MAX = 200
DESCRIPTION_MAX = 10_000


class DomainForm(forms.Form):
    """A form about one VM: it knows the VM (and so its host), and who asks (what they may use)."""

    def __init__(self, *args, domain: Domain, user: AbstractBaseUser | None = None, **kwargs) -> None:
        self.domain = domain
        self.user = user if user is not None else AnonymousUser()
        super().__init__(*args, **kwargs)


class ScopedForm(DomainForm):
    """A change that can apply to the running VM, to its definition, or to both."""

    live = forms.BooleanField(required=False, initial=True, label="Live (the running VM)")
    persistent = forms.BooleanField(required=False, initial=True, label="Persistent (its definition)")

    def clean(self) -> dict:
        data = super().clean()
        live, persistent = data.get("live"), data.get("persistent")
        if not live and not persistent:
            raise ValidationError("Choose live, persistent or both.")
        if live and not persistent and not self.domain.is_active:
            raise ValidationError("The VM is not running: a live-only change has nothing to act on. "
                                  "Choose persistent to change its definition.")
        if persistent and not self.domain.persistent:
            raise ValidationError("This VM is transient: it has no definition to change. Choose live only.")
        return data


def check_hotplug_room(form: ScopedForm, data: dict, what: str) -> None:
    """Refuse, before anything is queued, a live add of a PCIe device to a running VM whose
    hot-plug ports (as its XML last showed them) are all taken: libvirt would only say
    "No more available PCI slots" after the fact."""
    if not (data.get("live") and form.domain.is_active):
        return
    if form.domain.details.get("free_hotplug_ports") == 0:
        form.add_error(None, f"This VM has no free PCIe port left to plug {what} into while it runs. Untick "
                             "'live' to add it to the definition only (it appears at the next start); VMs "
                             "made by vmsite's wizard have 14 ports.")


def pools_named_to(form: DomainForm) -> tuple[list[str], list[str]]:
    """The pools a volume form may name to its user: (where a new disk of theirs may go, those and the
    pools of the volumes offered to them), offered_volume_choices first. Any other name is refused with
    the same words whether or not the host has such a pool."""
    for_new = list(pools_for_new_volume(form.user, form.domain).order_by("name").values_list("name", flat=True))
    of_offered = {volume.pool.name for volume, refusal in form.volume_offers if not refusal}
    return for_new, sorted(set(for_new) | of_offered)


def refuse_unusable_volume(form: DomainForm, data: dict, *, pool_field: str = "pool",
                           volume_field: str = "volume") -> None:
    """The page's answer to a volume the user may not put into this VM (accounts.access decides)."""
    pool_name, volume_name = data.get(pool_field), data.get(volume_field)
    if not pool_name or not volume_name:
        return
    volume = (Volume.objects.select_related("pool", "host", "record")
              .filter(host=form.domain.host, pool__name=pool_name, name=volume_name).first())
    refusal = volume_use_refusal(form.user, form.domain, volume, label=f"{pool_name}/{volume_name}",
                                 used_by=volume_users(volume) if volume is not None else [])
    if refusal:
        form.add_error(volume_field, refusal)


def clean_volume_name(value: str) -> str:
    if "/" in value:
        raise ValidationError("Paths typed by hand are not accepted: pick a pool and give the volume's name in it.")
    if not VOLUME_NAME_RE.match(value):
        raise ValidationError(VOLUME_RULE)
    return value


def split_offered_volume(form: DomainForm, data: dict) -> None:
    """The page's select sends "pool/volume"; the API may send the pool and the name apart."""
    value = data.get("volume") or ""
    pool_name, slash, name = value.partition("/")
    if not slash:
        return
    if pool_name not in dict(form.fields["pool"].choices) or "/" in name:  # pools_named_to's
        form.add_error("volume", "Paths typed by hand are not accepted: pick a pool and give the volume's name in it.")
        return
    try:
        data["pool"], data["volume"] = pool_name, clean_volume_name(name)
    except ValidationError as exc:
        form.add_error("volume", exc)


def offered_volume_choices(form: DomainForm) -> list[tuple[str, str]]:
    """The volumes the user may put into this VM (accounts.access decides), as "pool/volume"."""
    form.volume_offers = volume_offers(form.user, form.domain)  # the page's table shows them too
    return [(f"{volume.pool.name}/{volume.name}",
             f"{volume.pool.name}/{volume.name} ({volume.recorded_format}, {binary_size(volume.capacity)})")
            for volume, refusal in form.volume_offers if not refusal]


class AttachDiskForm(ScopedForm):
    """An existing volume (offered in a list), or a new one made in a pool and attached in one operation."""

    source = forms.ChoiceField(choices=DISK_SOURCES, required=False, initial="existing", label="Disk",
                               widget=forms.RadioSelect)
    volume = forms.CharField(max_length=300, required=False, strip=False, label="Volume",
                             widget=forms.Select, help_text="The volumes you may attach to this VM.")
    pool = forms.ChoiceField(required=False, label="Storage pool (new volume)", error_messages={
        "invalid_choice": "%(value)s is not a pool offered for this VM: a VM's own operators may make new disks "
                          "only in a pool that holds one of its own volumes, host operators in any active pool "
                          "of its host."})
    new_name = forms.CharField(max_length=300, required=False, strip=False, label="Name (new volume)",
                               help_text=VOLUME_RULE)
    new_size = SizeField(required=False, label="Size (new volume)")
    new_format = forms.ChoiceField(choices=NEW_DISK_FORMATS, initial="qcow2", required=False,
                                   label="Format (new volume)", help_text="qcow2 is thin and takes snapshots.")
    bus = forms.ChoiceField(choices=BUSES, initial="virtio",
                            help_text="USB disks unplug at once; virtio and SCSI ones need the guest OS to let go.")
    readonly = forms.BooleanField(required=False, label="Read-only")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["volume"].choices = [("", "—"), *offered_volume_choices(self)]
        self.fields["volume"].widget.choices = self.fields["volume"].choices
        self._offer_pools()

    def _offer_pools(self) -> None:
        """The select offers the pools a new disk may go in (accounts.access decides); the API may also
        name the pool of an offered volume apart from its name."""
        for_new, named = pools_named_to(self)
        self.fields["pool"].choices = [("", "—"), *((name, name) for name in named)]
        self.fields["pool"].widget.choices = [("", "—"), *((name, name) for name in for_new)]

    def clean(self) -> dict:
        data = super().clean()
        data["source"] = data.get("source") or "existing"
        if data["source"] == "new":
            self._clean_new(data)
        else:
            self._clean_existing(data)
        if data.get("bus") == "virtio":  # a PCIe device of its own; SATA, SCSI and USB disks join a controller
            check_hotplug_room(self, data, "a virtio disk")
        return data

    def _clean_existing(self, data: dict) -> None:
        if not data.get("volume"):
            self.add_error("volume", "Pick a volume, or choose a new volume.")
            return
        split_offered_volume(self, data)
        if "volume" in self.errors:
            return
        if not data.get("pool"):
            if "pool" not in self.errors:
                self.add_error("pool", "Pick the pool that holds the volume.")
            return
        try:
            clean_volume_name(data["volume"])
        except ValidationError as exc:
            self.add_error("volume", exc)
            return
        refuse_unusable_volume(self, data)

    def _clean_new(self, data: dict) -> None:
        pool = self._new_volume_pool(data)
        name = self._new_volume_name(data, pool)
        size = data.get("new_size")
        if size is None:
            self.add_error("new_size", "Give the new volume's size, like 10 GiB.")
        elif size < 1024**2:
            self.add_error("new_size", "A new volume needs at least 1 MiB.")
        elif pool is not None:
            self._check_room(pool, size, data.get("new_format") or "qcow2")
        data["volume"] = name
        data["new_format"] = data.get("new_format") or "qcow2"

    def _new_volume_pool(self, data: dict) -> StoragePool | None:
        if "pool" in self.errors:
            return None
        pool = StoragePool.objects.filter(host=self.domain.host, active=True, name=data.get("pool") or "").first()
        if pool is None:
            self.add_error("pool", "Pick the pool to make the new volume in.")
            return None
        refusal = new_volume_refusal(self.user, self.domain, pool)
        if refusal:
            self.add_error("pool", refusal)
            return None
        return pool

    def _new_volume_name(self, data: dict, pool: StoragePool | None) -> str:
        name = data.get("new_name") or ""
        if not name:
            self.add_error("new_name", "Give the new volume a name.")
            return ""
        try:
            clean_volume_name(name)
        except ValidationError as exc:
            self.add_error("new_name", exc)
            return ""
        if pool is not None and Volume.objects.filter(pool=pool, name=name).exists():
            self.add_error("new_name", f"The pool {pool.name} already has a volume named {name!r}: choose another "
                                       "name, or attach that volume.")
        return name

    def _check_room(self, pool: StoragePool, size: int, fmt: str) -> None:
        """A raw volume takes its whole size at once; a qcow2 one grows as it is written (thin)."""
        if fmt != "raw" and pool.pool_type not in FILE_POOL_TYPES:
            self.add_error("new_format", f"The pool {pool.name} holds logical volumes or partitions, not image "
                                         "files: choose raw.")
        elif pool.available < 1024**2:
            self.add_error("new_size", f"The pool {pool.name} is full ({binary_size(pool.available)} free): free "
                                       "space in it, or choose another pool.")
        elif fmt == "raw" and size > pool.available:
            self.add_error("new_size", f"The pool {pool.name} has {binary_size(pool.available)} free: a raw volume "
                                       f"of {binary_size(size)} does not fit. Choose a smaller size, or qcow2 (thin).")
        elif size > pool.capacity:
            self.add_error("new_size", f"{binary_size(size)} is more than the whole pool {pool.name} "
                                       f"({binary_size(pool.capacity)}).")


def _disk_choices(domain: Domain, devices: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(disk["target"], f"{disk['target']} ({disk['device']}: {disk.get('source') or 'empty'})")
            for disk in domain.details.get("disks", []) if disk.get("target") and disk.get("device") in devices]


class DetachDiskForm(ScopedForm):
    target = forms.ChoiceField(label="Disk", error_messages={"invalid_choice": "The VM has no disk %(value)s."})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = _disk_choices(self.domain, ("disk", "cdrom", "floppy", "lun"))


class AttachNicForm(ScopedForm):
    network = forms.ChoiceField(label="Virtual network", error_messages={
        "invalid_choice": "%(value)s is not a virtual network of this VM's host."})
    model = forms.ChoiceField(choices=nic_model_choices(None), initial="virtio")  # the host's, per instance
    mac = forms.CharField(required=False, max_length=64, label="MAC address",
                          help_text="Leave empty and vmsite picks one in 52:54:00:xx:xx:xx.")
    no_boot_rom = forms.BooleanField(required=False, label="No boot ROM (the NIC cannot boot from the network)")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["network"].choices = [(name, name) for name in VirtualNetwork.objects.filter(
            host=self.domain.host).order_by("name").values_list("name", flat=True)]
        self.fields["model"].choices = nic_model_choices(self.domain.host.capabilities)

    def clean_mac(self) -> str:
        mac = self.cleaned_data["mac"]
        if not mac.strip():
            return ""
        mac = clean_mac(mac)
        if any((nic.get("mac") or "").lower() == mac for nic in self.domain.details.get("interfaces", [])):
            raise ValidationError(f"The VM already has a NIC with the MAC {mac}.")
        if mac_in_use(host_id=self.domain.host_id, mac=mac):
            raise ValidationError(MAC_TAKEN.format(mac=mac))
        return mac

    def clean(self) -> dict:
        data = super().clean()
        model = data.get("model")
        if (model in CONVENTIONAL_PCI_NIC_MODELS and data.get("live") and self.domain.is_active
                and self.domain.details.get("free_hotplug_ports") is not None):
            self.add_error("model", f"An {model} NIC is a conventional PCI device, which a running q35 VM cannot "
                                    "take: choose virtio or e1000e, or untick 'live' to add it at the next start.")
        elif model:
            check_hotplug_room(self, data, "a NIC")
        return data


class DetachNicForm(ScopedForm):
    mac = forms.ChoiceField(label="Network interface", error_messages={
        "invalid_choice": "The VM has no NIC with the MAC %(value)s."})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["mac"].choices = [(nic["mac"], f"{nic['mac']} ({nic.get('type')}: {nic.get('source') or '—'})")
                                      for nic in self.domain.details.get("interfaces", []) if nic.get("mac")]


def _nic_choices(domain: Domain) -> list[tuple[str, str]]:
    return [(nic["mac"], f"{nic['mac']} ({nic.get('type')}: {nic.get('source') or '—'})")
            for nic in domain.details.get("interfaces", []) if nic.get("mac")]


def _network_choices(domain: Domain) -> list[tuple[str, str]]:
    return [(name, name) for name in VirtualNetwork.objects.filter(host=domain.host).order_by("name")
            .values_list("name", flat=True)]


class NicLinkForm(ScopedForm):
    """Set a NIC's link up or down: the guest sees its cable plugged or pulled."""

    mac = forms.ChoiceField(label="Network interface", error_messages={
        "invalid_choice": "The VM has no NIC with the MAC %(value)s."})
    state = forms.ChoiceField(choices=[("up", "Up"), ("down", "Down")], label="Link")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["mac"].choices = _nic_choices(self.domain)


class NicChangeForm(ScopedForm):
    """Move a NIC to another virtual network, or change its model (the definition only)."""

    mac = forms.ChoiceField(label="Network interface", error_messages={
        "invalid_choice": "The VM has no NIC with the MAC %(value)s."})
    network = forms.ChoiceField(required=False, label="Virtual network", error_messages={
        "invalid_choice": "%(value)s is not a virtual network of this VM's host."})
    model = forms.ChoiceField(required=False, choices=[("", "(keep)"), *nic_model_choices(None)],
                              help_text="A running VM keeps its NIC model until its next start: a model change "
                                        "needs 'persistent' only.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["mac"].choices = _nic_choices(self.domain)
        self.fields["model"].choices = [("", "(keep)"), *nic_model_choices(self.domain.host.capabilities)]
        if may_rewire_nics(self.user, self.domain):
            self.fields["network"].choices = [("", "(keep)"), *_network_choices(self.domain)]
        else:  # the host's networks are not this user's to see: none is offered, any is refused alike
            self.fields["network"].choices = [("", "(keep)")]
            self.fields["network"].help_text = HOST_OPERATOR_NETWORK
            self.fields["network"].error_messages["invalid_choice"] = HOST_OPERATOR_NETWORK

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("network") and not data.get("model"):
            raise ValidationError("Choose a new network, a new model, or both.")
        nic = next((nic for nic in self.domain.details.get("interfaces", []) if nic.get("mac") == data.get("mac")), {})
        if data.get("model") and data.get("model") != nic.get("model") and data.get("live") and self.domain.is_active:
            self.add_error("model", "A running VM's NIC cannot change model: untick 'live'; the new model applies "
                                    "from the next start.")
        return data


FILTER_PARAMETER_RE = re.compile(r"\A[A-Z][A-Z0-9_]{0,63}\Z")


class NicFilterForm(ScopedForm):
    """Apply a network filter (nwfilter) to a NIC, with its parameters, or remove it."""

    mac = forms.ChoiceField(label="Network interface", error_messages={
        "invalid_choice": "The VM has no NIC with the MAC %(value)s."})
    filter = forms.ChoiceField(required=False, label="Network filter", error_messages={
        "invalid_choice": "%(value)s is not a network filter of this VM's host."},
                               help_text="Empty removes the NIC's filter.")
    parameters = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                 help_text="One per line, like IP=10.251.1.5 (upper-case names).")

    def __init__(self, *args, **kwargs) -> None:
        from networking.models import NetworkFilter

        super().__init__(*args, **kwargs)
        self.fields["mac"].choices = _nic_choices(self.domain)
        self.fields["filter"].choices = [("", "(none)"), *[(name, name) for name in NetworkFilter.objects.filter(
            host=self.domain.host).order_by("name").values_list("name", flat=True)]]

    def clean_parameters(self) -> dict[str, str]:
        import ipaddress

        parameters = {}
        for number, line in enumerate(self.cleaned_data["parameters"].splitlines(), start=1):
            if not line.strip():
                continue
            name, equals, value = line.strip().partition("=")
            if not equals or not FILTER_PARAMETER_RE.match(name.strip()):
                raise ValidationError(f"Line {number}: write NAME=value with an upper-case name, like IP=10.251.1.5.")
            name, value = name.strip(), _xml_text(value.strip())
            if name in ("IP", "DHCPSERVER", "IPV6"):
                try:
                    ipaddress.ip_address(value)
                except ValueError:
                    raise ValidationError(f"Line {number}: {value!r} is not an IP address.") from None
            parameters[name] = value
        return parameters

    def clean(self) -> dict:
        data = super().clean()
        if data.get("parameters") and not data.get("filter"):
            self.add_error("parameters", "Parameters need a filter.")
        return data


def host_vcpu_limit(domain: Domain) -> int | None:
    """The most vCPUs a VM of this host may have: the hypervisor's limit when known, else its CPU count."""
    return (domain.host.capabilities or {}).get("max_vcpus") or domain.host.cpu_count


class VcpusForm(ScopedForm):
    vcpus = forms.IntegerField(label="vCPUs", error_messages={"invalid": "Give a whole number of vCPUs."})
    maximum = forms.IntegerField(required=False, label="Maximum vCPUs (definition only, from the next start)",
                                 error_messages={"invalid": "Give a whole number of vCPUs."})

    def clean_vcpus(self) -> int:
        return self._check_count(self.cleaned_data["vcpus"])

    def clean_maximum(self) -> int | None:
        maximum = self.cleaned_data["maximum"]
        return None if maximum is None else self._check_count(maximum)

    def _check_count(self, count: int) -> int:
        if count < 1:
            raise ValidationError("A VM needs at least 1 vCPU.")
        limit = host_vcpu_limit(self.domain)
        if limit and count > limit:
            raise ValidationError(f"{count} vCPUs is more than the host {self.domain.host} allows ({limit}).")
        return count

    def clean(self) -> dict:
        data = super().clean()
        vcpus, maximum = data.get("vcpus"), data.get("maximum")
        if vcpus is None:
            return data
        if maximum is not None:
            if not data.get("persistent"):
                self.add_error("maximum", "A new maximum only applies to the definition: choose persistent.")
            elif vcpus > maximum:
                self.add_error("vcpus", f"{vcpus} vCPUs is more than the new maximum of {maximum}.")
        else:
            vm_maximum = self.domain.details.get("max_vcpus")
            if vm_maximum and vcpus > vm_maximum:
                self.add_error("vcpus", f"{vcpus} vCPUs is more than this VM's maximum of {vm_maximum}; "
                                        "raise the maximum (persistent) first.")
        return data


class MemoryForm(ScopedForm):
    memory_mib = forms.IntegerField(label="Memory (MiB)", error_messages={"invalid": "Give a whole number of MiB."})
    maximum_mib = forms.IntegerField(required=False, label="Maximum memory (MiB; definition only, from the next start)",
                                     error_messages={"invalid": "Give a whole number of MiB."})

    def clean_memory_mib(self) -> int:
        return self._check_amount(self.cleaned_data["memory_mib"])

    def clean_maximum_mib(self) -> int | None:
        amount = self.cleaned_data["maximum_mib"]
        return None if amount is None else self._check_amount(amount)

    def _check_amount(self, mib: int) -> int:
        if mib < 1:
            raise ValidationError("Memory must be at least 1 MiB.")
        host_kib = self.domain.host.memory_kib
        if host_kib and mib * 1024 > host_kib:
            raise ValidationError(f"{mib} MiB is more than the host {self.domain.host} has ({host_kib // 1024} MiB).")
        return mib

    def clean(self) -> dict:
        data = super().clean()
        memory, maximum = data.get("memory_mib"), data.get("maximum_mib")
        if memory is None:
            return data
        if data.get("live") and self.domain.is_active and self.domain.lacks_memory_balloon:
            self.add_error("memory_mib", "This VM has no memory balloon device, so its memory cannot change while it "
                                         "runs: untick 'live' to change its definition (from the next start).")
        if maximum is not None:
            if not data.get("persistent"):
                self.add_error("maximum_mib", "A new maximum only applies to the definition: choose persistent.")
            elif memory > maximum:
                self.add_error("memory_mib", f"{memory} MiB is more than the new maximum of {maximum} MiB.")
        else:
            vm_maximum_kib = self.domain.details.get("memory_kib")
            if vm_maximum_kib and memory * 1024 > vm_maximum_kib:
                self.add_error("memory_mib", f"{memory} MiB is more than this VM's maximum of "
                                             f"{vm_maximum_kib // 1024} MiB; raise the maximum (persistent) first.")
        return data


class MediaForm(ScopedForm):
    target = forms.ChoiceField(label="Drive", error_messages={
        "invalid_choice": "The VM has no CD-ROM or floppy drive %(value)s."})
    volume = forms.CharField(required=False, max_length=300, strip=False, label="Medium", widget=forms.Select,
                             help_text="The volumes you may use in this VM; none ejects the medium.")
    pool = forms.ChoiceField(required=False, widget=forms.HiddenInput, error_messages={
        "invalid_choice": "%(value)s is not the pool of a volume offered for this VM."})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = _disk_choices(self.domain, ("cdrom", "floppy"))
        self.fields["volume"].choices = [("", "(none: eject)"), *offered_volume_choices(self)]
        self.fields["pool"].choices = [("", "—"), *((name, name) for name in pools_named_to(self)[1])]
        self.fields["volume"].widget.choices = self.fields["volume"].choices

    def clean(self) -> dict:
        data = super().clean()
        split_offered_volume(self, data)
        if not data.get("volume") or "volume" in self.errors:
            return data
        try:
            clean_volume_name(data["volume"])
        except ValidationError as exc:
            self.add_error("volume", exc)
            return data
        if not data.get("pool") and "pool" not in self.errors:
            self.add_error("pool", "Pick the pool that holds the volume.")
        refuse_unusable_volume(self, data)
        return data


class BootOrderForm(DomainForm):
    first = forms.ChoiceField(choices=BOOT_DEVICES, label="First")
    second = forms.ChoiceField(choices=[("", "—"), *BOOT_DEVICES], required=False, label="Then")
    third = forms.ChoiceField(choices=[("", "—"), *BOOT_DEVICES], required=False, label="Then")
    fourth = forms.ChoiceField(choices=[("", "—"), *BOOT_DEVICES], required=False, label="Then")

    def clean(self) -> dict:
        data = super().clean()
        if not self.domain.persistent:
            raise ValidationError("This VM is transient: it has no definition whose boot order could change.")
        devices = [data[name] for name in ("first", "second", "third", "fourth") if data.get(name)]
        repeated = sorted({device for device in devices if devices.count(device) > 1})
        if repeated:
            raise ValidationError(f"Each device may appear once in the boot order ({', '.join(repeated)} is repeated).")
        data["devices"] = devices
        return data


class MetadataForm(ScopedForm):
    title = forms.CharField(required=False, max_length=TITLE_MAX, strip=False,
                            help_text="One line; empty removes it.")
    description = forms.CharField(required=False, max_length=DESCRIPTION_MAX, strip=False,
                                  widget=forms.Textarea(attrs={"rows": 4}), help_text="Empty removes it.")

    def clean_title(self) -> str:
        title = _xml_text(self.cleaned_data["title"])
        if "\n" in title or "\r" in title:
            raise ValidationError("The title must be a single line; put longer text in the description.")
        return title

    def clean_description(self) -> str:
        return _xml_text(self.cleaned_data["description"])


class TagsForm(DomainForm):
    """The VM's tags (kept in its libvirt definition; backup jobs select VMs by them)."""

    tags = forms.CharField(required=False, max_length=1000, label="Tags",
                           help_text=f"Separated by commas or spaces, e.g. “web, nightly”; empty removes them all. "
                                     f"{TAG_RULE[0].upper()}{TAG_RULE[1:]}; at most {MAX_TAGS}.")

    def clean_tags(self) -> list[str]:
        tags: list[str] = []
        for word in re.split(r"[\s,]+", self.cleaned_data["tags"].lower()):
            if word and word not in tags:
                tags.append(word)
        bad = [tag for tag in tags if not TAG_PATTERN.fullmatch(tag)]
        if bad:
            raise ValidationError(f"Not a tag: {', '.join(bad)}. {TAG_RULE[0].upper()}{TAG_RULE[1:]}.")
        if len(tags) > MAX_TAGS:
            raise ValidationError(f"{len(tags)} tags: a VM has at most {MAX_TAGS}.")
        return tags


def _xml_text(value: str) -> str:
    try:
        return check_xml_text(value)
    except ValueError as exc:
        raise ValidationError(f"The text cannot be stored: it {str(exc).removeprefix('text ')}.") from None


def _stored_document(domain: Domain):
    """The VM's definition as last read from libvirt (None until the first read)."""
    return parse_trusted(domain.xml_inactive) if domain.xml_inactive else None


def _stored_volume_paths(domain: Domain, pools: dict[str, str]) -> dict[str, bool]:
    """The volumes a VM uses (path -> whether it writes to it): from its stored XML, else its summary."""
    stored = _stored_document(domain)
    if stored is not None:
        return volume_paths(stored, pools)
    return {disk["source"]: disk.get("device") != "cdrom" for disk in domain.details.get("disks", [])
            if (disk.get("source") or "").startswith("/")}


class XMLEditForm(DomainForm):
    """The expert page: the whole definition, parsed safely and checked against the allowlist."""

    xml = forms.CharField(strip=False, widget=forms.Textarea(attrs={"rows": 30}), label="Domain XML")

    def clean_xml(self) -> str:
        text = self.cleaned_data["xml"]
        try:
            root = parse_untrusted(text)
        except XMLRejected as exc:
            raise ValidationError(f"{exc}.") from None
        refusals = check_domain_xml(root, self._host_context())
        if refusals:
            raise ValidationError(refusals)
        self._check_name(root.findtext("name") or "")
        for mac in root.xpath("./devices/interface/mac/@address"):
            if mac_in_use(host_id=self.domain.host_id, mac=mac, except_domain_id=self.domain.pk):
                raise ValidationError(MAC_TAKEN.format(mac=mac.lower()).removesuffix(", or leave it empty.") + ".")
        return text

    def _pool_paths(self) -> dict[str, str]:
        return dict(StoragePool.objects.filter(host=self.domain.host).values_list("name", "target_path"))

    def _host_context(self) -> HostContext:
        """The allowlist's view of the host, from the inventory (the worker checks again against libvirt)."""
        pools = self._pool_paths()
        own = _stored_volume_paths(self.domain, pools)
        used_elsewhere: dict[str, bool] = {}
        for other in Domain.objects.filter(host_id=self.domain.host_id).exclude(pk=self.domain.pk):
            for path, writes in _stored_volume_paths(other, pools).items():
                used_elsewhere[path] = used_elsewhere.get(path, False) or writes
        stored = _stored_document(self.domain)
        return HostContext(uuid=str(self.domain.uuid), pools=pools,
                           emulator=(self.domain.host.capabilities or {}).get("emulator"), name=self.domain.name,
                           nvram=nvram_path(stored) if stored is not None else None, own_paths=frozenset(own),
                           used_elsewhere=used_elsewhere)

    def _check_name(self, name: str) -> None:
        if name == self.domain.name:
            return
        validate_domain_name(name)
        if Domain.objects.filter(host=self.domain.host, name=name).exclude(pk=self.domain.pk).exists():
            raise ValidationError(f"The host {self.domain.host} already has a VM named {name!r}.")
