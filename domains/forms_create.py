"""The new-VM wizard's form: every choice checked against the chosen host's capabilities."""
from __future__ import annotations

import re

from django import forms
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError

from domains.choices import nic_model_choices
from domains.forms import NAME_RULE, validate_domain_name
from domains.migration import migration_peers
from domains.models import Domain
from hosts.models import Host
from networking.models import VirtualNetwork
from accounts.access import volume_in_use_refusal
from networking.selectors import mac_in_use
from storage.models import StoragePool, Volume
from storage.selectors import volume_users
from virt.xml.base import check_xml_text

VOLUME_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\Z")
DEVICE_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,14}\Z")
MAC_RE = re.compile(r"\A([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}\Z")
SSH_KEY_RE = re.compile(r"\A(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( \S.*)?\Z")
CLOUD_USER_RE = re.compile(r"\A[a-z_][a-z0-9_-]{0,31}\Z")
HOSTNAME_RE = re.compile(r"\A(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
VOLUME_RULE = "Use letters, digits, '.', '_', '+' or '-' (a volume name, not a path)."

DISK_SOURCES = [("none", "No disk"), ("new", "A new volume"), ("existing", "An existing volume")]
NIC_KINDS = [("none", "No network"), ("network", "Virtual network"), ("bridge", "Host bridge"),
             ("direct", "macvtap (direct)")]
FIRMWARE_LABELS = {"bios": "BIOS (SeaBIOS)", "efi": "UEFI", "efi-secure": "UEFI with secure boot"}
CPU_MODE_LABELS = {"host-passthrough": "Host passthrough (fastest, not migratable to other CPUs)",
                   "host-model": "Host model (migratable between similar hosts)", "custom": "A named CPU model"}


class CreateDomainForm(forms.Form):
    name = forms.CharField(max_length=300, strip=False, help_text=NAME_RULE)
    title = forms.CharField(max_length=300, required=False)
    description = forms.CharField(max_length=4000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    vcpus = forms.IntegerField(label="vCPUs", initial=1)
    max_vcpus = forms.IntegerField(label="Maximum vCPUs", initial=2, help_text="vCPUs can be added live up to this.")
    memory_mib = forms.IntegerField(label="Memory (MiB)", initial=1024)
    max_memory_mib = forms.IntegerField(label="Maximum memory (MiB)", initial=1024)
    machine = forms.ChoiceField()
    firmware = forms.ChoiceField()
    cpu_mode = forms.ChoiceField(label="CPU")
    cpu_model = forms.ChoiceField(required=False, label="CPU model")
    disk_source = forms.ChoiceField(choices=DISK_SOURCES, label="Disk")
    disk_pool = forms.ChoiceField(required=False, label="Pool")
    disk_size_gib = forms.IntegerField(required=False, initial=10, label="Size (GiB)")
    disk_format = forms.ChoiceField(choices=[("qcow2", "qcow2"), ("raw", "raw")], initial="qcow2", label="Format")
    disk_volume = forms.CharField(required=False, max_length=300, label="Existing volume name")
    disk_bus = forms.ChoiceField(choices=[("virtio", "virtio"), ("sata", "SATA"), ("scsi", "SCSI"), ("ide", "IDE")],
                                 initial="virtio", label="Bus")
    disk_cache = forms.ChoiceField(choices=[(c, c) for c in ("default", "none", "writeback", "writethrough",
                                                             "directsync", "unsafe")], initial="default",
                                   label="Cache")
    cdrom_pool = forms.ChoiceField(required=False, label="CD-ROM: pool")
    cdrom_volume = forms.CharField(required=False, max_length=300, label="CD-ROM: ISO volume name")
    nic_kind = forms.ChoiceField(choices=NIC_KINDS, label="Network interface")
    nic_network = forms.ChoiceField(required=False, label="Virtual network")
    nic_bridge = forms.CharField(required=False, max_length=300, label="Host bridge")
    nic_direct_dev = forms.CharField(required=False, max_length=300, label="Host device (macvtap)")
    nic_direct_mode = forms.ChoiceField(choices=[(m, m) for m in ("bridge", "vepa", "private", "passthrough")],
                                        initial="bridge", required=False, label="macvtap mode")
    nic_model = forms.ChoiceField(choices=nic_model_choices(None), initial="virtio", label="NIC model")
    nic_mac = forms.CharField(required=False, max_length=300, label="MAC address",
                              help_text="Leave empty to generate one.")
    nic_boot_rom = forms.BooleanField(required=False, initial=True, label="Network boot ROM")
    boot_first = forms.ChoiceField(choices=[("hd", "Disk"), ("cdrom", "CD-ROM"), ("network", "Network")],
                                   initial="hd", label="Boot from")
    vnc = forms.BooleanField(required=False, initial=True, label="VNC console (on the host's loopback)")
    serial = forms.BooleanField(required=False, initial=True, label="Serial console")
    autostart = forms.BooleanField(required=False, label="Start with the host")
    start_now = forms.BooleanField(required=False, initial=True, label="Start it now")
    cloud_init = forms.BooleanField(required=False, label="cloud-init")
    ci_hostname = forms.CharField(required=False, max_length=300, label="Guest host name")
    ci_user = forms.CharField(required=False, max_length=300, initial="admin", label="User")
    ci_ssh_keys = forms.CharField(required=False, max_length=20000, widget=forms.Textarea(attrs={"rows": 2}),
                                  label="SSH public keys (one a line)")
    ci_password = forms.CharField(required=False, max_length=300, widget=forms.PasswordInput, label="Password")
    ci_user_data = forms.CharField(required=False, max_length=32000, widget=forms.Textarea(attrs={"rows": 3}),
                                   label="Extra user-data (#cloud-config or a #! script)")

    def __init__(self, *args, host: Host, user: AbstractBaseUser | None = None, **kwargs) -> None:
        self.host = host
        self.user = user if user is not None else AnonymousUser()
        super().__init__(*args, **kwargs)
        self.caps = host.capabilities or {}
        self._offer_capabilities()
        self._offer_pools_and_networks()

    def _offer_capabilities(self) -> None:
        machines = self.caps.get("machines") or ["pc"]
        self.fields["machine"].choices = [(m, m) for m in machines]
        self.fields["machine"].initial = "q35" if "q35" in machines else machines[0]
        firmware = list(self.caps.get("firmware") or ["bios"])
        if "efi" in firmware and self.caps.get("secure_boot"):
            firmware.append("efi-secure")
        self.fields["firmware"].choices = [(f, FIRMWARE_LABELS.get(f, f)) for f in firmware]
        self.fields["firmware"].initial = "bios" if "bios" in firmware else firmware[0]
        modes = [m for m in self.caps.get("cpu_modes") or ["host-model", "custom"] if m in CPU_MODE_LABELS]
        self.fields["cpu_mode"].choices = [(m, CPU_MODE_LABELS[m]) for m in modes]
        preferred, why = self._preferred_cpu_mode()
        self.fields["cpu_mode"].initial = preferred if preferred in modes else modes[0]
        self.fields["cpu_mode"].help_text = why
        self.fields["cpu_model"].choices = [("", "—")] + [(m, m) for m in self.caps.get("cpu_models", [])]
        self.fields["nic_model"].choices = nic_model_choices(self.caps)

    def _preferred_cpu_mode(self) -> tuple[str, str]:
        """The default CPU mode and why: a VM that may move to another host needs a CPU that can
        move; otherwise, as virt-install does with KVM, the host's CPU passed through (host-model
        can name features a nested or unusual host cannot actually give a guest)."""
        peers = list(migration_peers(self.host, self.user).values_list("name", flat=True)[:4])
        if peers:
            shown = ", ".join(peers[:3]) + (" and more" if len(peers) > 3 else "")
            return "host-model", (f"Host model by default: you may migrate VMs to {shown}, and a passed-through "
                                  "CPU cannot move to a host with another CPU.")
        if self.caps.get("kvm"):
            return "host-passthrough", ("Host passthrough by default: the fastest, and there is no other host "
                                        "you may migrate this VM to.")
        return "host-model", "Host model by default: without KVM the host's CPU cannot be passed through."

    def _offer_pools_and_networks(self) -> None:
        pools = list(StoragePool.objects.filter(host=self.host, active=True).values_list("name", flat=True))
        for field in ("disk_pool", "cdrom_pool"):
            self.fields[field].choices = [("", "—")] + [(p, p) for p in pools]
        self.fields["disk_pool"].initial = pools[0] if pools else ""
        self.fields["disk_source"].initial = "new" if pools else "none"
        networks = list(VirtualNetwork.objects.filter(host=self.host, active=True).values_list("name", flat=True))
        self.fields["nic_network"].choices = [("", "—")] + [(n, n) for n in networks]
        self.fields["nic_network"].initial = networks[0] if networks else ""
        self.fields["nic_kind"].initial = "network" if networks else "none"

    def clean_name(self) -> str:
        name = validate_domain_name(self.cleaned_data["name"])
        if Domain.objects.filter(host=self.host, name=name).exists():
            raise ValidationError(f"The host {self.host} already has a VM named {name!r}.")
        return name

    def clean_title(self) -> str:
        title = _xml_text(self.cleaned_data["title"])
        if "\n" in title or "\r" in title:
            raise ValidationError("A title is one line.")
        return title

    def clean_description(self) -> str:
        return _xml_text(self.cleaned_data["description"])

    def clean_vcpus(self) -> int:
        vcpus = self.cleaned_data["vcpus"]
        if vcpus < 1:
            raise ValidationError("A VM needs at least one vCPU.")
        if self.host.cpu_count and vcpus > self.host.cpu_count:
            raise ValidationError(f"The host has {self.host.cpu_count} CPUs; give the VM at most that many.")
        return vcpus

    def clean_max_vcpus(self) -> int:
        value = self.cleaned_data["max_vcpus"]
        machine_max = self.caps.get("max_vcpus")
        if value < 1:
            raise ValidationError("A VM needs at least one vCPU.")
        if machine_max and value > machine_max:
            raise ValidationError(f"This machine type allows at most {machine_max} vCPUs.")
        return value

    def clean_memory_mib(self) -> int:
        return self._memory("memory_mib")

    def clean_max_memory_mib(self) -> int:
        return self._memory("max_memory_mib")

    def _memory(self, field: str) -> int:
        value = self.cleaned_data[field]
        if value < 16:
            raise ValidationError("Give the VM at least 16 MiB of memory.")
        host_mib = (self.host.memory_kib or 0) // 1024
        if host_mib and value > host_mib:
            raise ValidationError(f"The host has {host_mib} MiB of memory; give the VM at most that.")
        return value

    def clean_disk_volume(self) -> str:
        return _volume_name(self.cleaned_data["disk_volume"])

    def clean_cdrom_volume(self) -> str:
        return _volume_name(self.cleaned_data["cdrom_volume"])

    def clean_nic_bridge(self) -> str:
        return _device_name(self.cleaned_data["nic_bridge"])

    def clean_nic_direct_dev(self) -> str:
        return _device_name(self.cleaned_data["nic_direct_dev"])

    def clean_nic_mac(self) -> str:
        mac = self.cleaned_data["nic_mac"].strip().lower()
        if mac and not MAC_RE.match(mac):
            raise ValidationError("Not a MAC address: use six pairs of hex digits, as 52:54:00:12:34:56.")
        if mac and int(mac[:2], 16) & 1:
            raise ValidationError("That is a multicast address: the first pair must be even (52:54:00:… is usual).")
        if mac and mac_in_use(host_id=self.host.pk, mac=mac):
            raise ValidationError(f"The MAC {mac} is already used by another VM on this host: choose another, "
                                  "or leave it empty.")
        return mac

    def clean_ci_ssh_keys(self) -> list[str]:
        keys = [line.strip() for line in self.cleaned_data["ci_ssh_keys"].splitlines() if line.strip()]
        for key in keys:
            if not SSH_KEY_RE.match(key):
                raise ValidationError(f"Not an SSH public key: {key[:40]}…")
        return keys

    def clean(self) -> dict:
        data = super().clean()
        self._clean_relations(data)
        self._clean_disk(data)
        self._clean_nic(data)
        self._clean_cloud_init(data)
        return data

    def _clean_relations(self, data: dict) -> None:
        if {"vcpus", "max_vcpus"} <= data.keys() and data["vcpus"] > data["max_vcpus"]:
            self.add_error("max_vcpus", "The maximum cannot be below the vCPUs it starts with.")
        if {"memory_mib", "max_memory_mib"} <= data.keys() and data["memory_mib"] > data["max_memory_mib"]:
            self.add_error("max_memory_mib", "The maximum cannot be below the memory it starts with.")
        if data.get("cpu_mode") == "custom" and not data.get("cpu_model"):
            self.add_error("cpu_model", "Choose a CPU model.")

    def _clean_disk(self, data: dict) -> None:
        source = data.get("disk_source")
        if source in ("new", "existing") and not data.get("disk_pool"):
            self.add_error("disk_pool", "Choose the pool the disk is in.")
        if source == "new":
            size = data.get("disk_size_gib")
            if size is None or size < 1:
                self.add_error("disk_size_gib", "A new disk needs a size of at least 1 GiB.")
            elif size > 65536:
                self.add_error("disk_size_gib", "At most 65536 GiB.")
            elif data.get("disk_format") == "raw" and size * 2**30 > self._pool_available(data.get("disk_pool")):
                self.add_error("disk_size_gib", "The pool does not have that much free space for a raw disk.")
        if source == "existing" and not data.get("disk_volume"):
            self.add_error("disk_volume", "Name the volume to use.")
        if data.get("cdrom_volume") and not data.get("cdrom_pool"):
            self.add_error("cdrom_pool", "Choose the pool the ISO is in.")
        if source == "existing":
            self._refuse_used_volume(data, "disk_pool", "disk_volume")
        self._refuse_used_volume(data, "cdrom_pool", "cdrom_volume")

    def _refuse_used_volume(self, data: dict, pool_field: str, volume_field: str) -> None:
        pool_name, volume_name = data.get(pool_field), data.get(volume_field)
        volume = (Volume.objects.select_related("pool", "host", "record")
                  .filter(host=self.host, pool__name=pool_name, name=volume_name).first()
                  if pool_name and volume_name else None)
        refusal = volume and volume_in_use_refusal(self.user, volume, label=f"{pool_name}/{volume_name}",
                                                   used_by=volume_users(volume))
        if refusal:
            self.add_error(volume_field, refusal)

    def _pool_available(self, name: str | None) -> float:
        pool = StoragePool.objects.filter(host=self.host, name=name).first() if name else None
        return pool.available if pool else float("inf")

    def _clean_nic(self, data: dict) -> None:
        required = {"network": "nic_network", "bridge": "nic_bridge", "direct": "nic_direct_dev"}.get(data.get("nic_kind"))
        if required and not data.get(required):
            self.add_error(required, "Required for this kind of network interface.")

    def _clean_cloud_init(self, data: dict) -> None:
        if not data.get("cloud_init"):
            return
        if not HOSTNAME_RE.match(data.get("ci_hostname") or data.get("name", "")):
            self.add_error("ci_hostname", "A host name is 1 to 63 letters, digits or '-'.")
        if not CLOUD_USER_RE.match(data.get("ci_user") or ""):
            self.add_error("ci_user", "Not a valid user name: lower-case letters, digits, '_' or '-'.")
        if not data.get("ci_ssh_keys") and not data.get("ci_password"):
            self.add_error("ci_ssh_keys", "Give an SSH key or a password, or the guest cannot be logged into.")
        seed_pool = data.get("disk_pool") or data.get("cdrom_pool")
        if not seed_pool:
            self.add_error("disk_pool", "cloud-init needs a pool to put its seed image in.")


def _xml_text(value: str) -> str:
    """Refused here, with a message on the form, rather than failing the create operation in the worker."""
    try:
        return check_xml_text(value)
    except ValueError as exc:
        raise ValidationError(f"The text cannot be stored: it {str(exc).removeprefix('text ')}.") from None


def _volume_name(value: str) -> str:
    value = value.strip()
    if value and not VOLUME_NAME_RE.match(value):
        raise ValidationError(VOLUME_RULE)
    return value


def _device_name(value: str) -> str:
    value = value.strip()
    if value and not DEVICE_NAME_RE.match(value):
        raise ValidationError("A host device name is 1 to 15 letters, digits, '_', '.' or '-'.")
    return value


def create_arguments(form: CreateDomainForm) -> dict:
    """What the create operation needs, as JSON. The password is replaced by its hash here, so
    the plain text never reaches the database or the broker."""
    from domains.cloudinit import hash_password

    data = dict(form.cleaned_data)
    password = data.pop("ci_password", "")
    data["ci_password_hash"] = hash_password(password) if data.get("cloud_init") and password else ""
    return data
