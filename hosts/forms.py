"""Validation of everything a user types or uploads about a host."""
from __future__ import annotations

import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django import forms
from django.core.exceptions import ValidationError

from hosts.choices import Transport
from hosts.models import Host
from hosts.services import INSTALLATION_KEY_NAME
from hosts.ssh import SSHMaterialError, load_private_key
from hosts.uri import validate_address, validate_test_driver_path, validate_username

SASL_USER_RE = re.compile(r"\A[^\s\"'\\\x00-\x1f\x7f]{1,255}\Z")
FINGERPRINT_RE = re.compile(r"\A(SHA256:)?[A-Za-z0-9+/]{43}=?\Z")
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
MAX_UPLOAD = 64 * 1024
TLS_FILES = {"tls_ca_cert": "cacert.pem", "tls_client_cert": "clientcert.pem", "tls_client_key": "clientkey.pem"}
REMOTE = {Transport.SSH, Transport.TLS, Transport.TCP}


class HostForm(forms.Form):
    name = forms.CharField(max_length=300, help_text="A short label: letters, digits, '.', '_' and '-'.")
    transport = forms.ChoiceField(choices=Transport.choices, initial=Transport.SSH)
    address = forms.CharField(max_length=300, required=False, help_text="DNS name or IP address of the host.")
    port = forms.IntegerField(required=False, help_text="Leave empty for the default (SSH 22, TLS 16514, TCP 16509).")
    username = forms.CharField(
        max_length=300, required=False, initial="root", label="SSH user",
        help_text="The user vmsite logs in as on the host. A user other than root must be allowed to manage "
                  "the host's libvirt: a member of its 'libvirt' group (libvirtd's unix_sock_group), or "
                  "allowed by a polkit rule for org.libvirt.unix.manage (see the README).")
    ssh_private_key = forms.FileField(required=False, label="SSH private key (optional)",
                                      help_text="Leave empty to use vmsite's own key (shown below).")
    tls_ca_cert = forms.FileField(required=False, label="CA certificate (PEM)")
    tls_client_cert = forms.FileField(required=False, label="Client certificate (PEM)")
    tls_client_key = forms.FileField(required=False, label="Client private key (PEM)")
    sasl_username = forms.CharField(
        max_length=255, required=False, label="SASL user (TCP/TLS)",
        help_text="Only for a host whose libvirtd asks for SASL (auth_tcp or auth_tls = \"sasl\"): the user "
                  "made on it with saslpasswd2 -a libvirt. Leave empty if it does not.")
    sasl_password = forms.CharField(
        max_length=1024, required=False, strip=False, label="SASL password",
        widget=forms.PasswordInput(render_value=False),
        help_text="Kept encrypted, never shown again.")
    test_driver_file = forms.CharField(max_length=300, required=False, label="Test driver file",
                                       help_text="'default' or the absolute path of a libvirt test driver XML file.")
    enabled = forms.BooleanField(required=False, initial=True, help_text="Disabled hosts are not synced.")
    # The API's way to confirm the host key (the pages show the scanned key and ask instead).
    ssh_host_key_fingerprint = forms.CharField(
        required=False, max_length=100, label="Expected SSH host key fingerprint",
        help_text="SHA256:... as ssh-keygen -l prints it: only a key with this fingerprint is pinned.")

    def __init__(self, *args, instance: Host | None = None, **kwargs) -> None:
        self.instance = instance
        if instance is not None and not args and "initial" not in kwargs:
            kwargs["initial"] = _initial(instance)
        super().__init__(*args, **kwargs)
        if instance is not None:
            self._say_what_is_kept(instance)

    def _say_what_is_kept(self, host: Host) -> None:
        """Keys are write-only: the form never shows them, and an empty file field keeps what is stored."""
        if host.ssh_key is not None and host.ssh_key.name != INSTALLATION_KEY_NAME:
            self.fields["ssh_private_key"].help_text = (f"Leave empty to keep the stored key "
                                                        f"({host.ssh_key.fingerprint}).")
        if host.has_tls_files:
            for field in TLS_FILES:
                self.fields[field].help_text = "Leave empty to keep the stored file."
        if host.has_sasl_login:
            self.fields["sasl_password"].help_text = "Leave empty to keep the stored password."

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not NAME_RE.match(name):
            raise ValidationError("Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
        others = Host.objects.filter(name__iexact=name)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise ValidationError(f"A host named {name!r} is already registered.")
        return name

    def clean_port(self) -> int | None:
        port = self.cleaned_data.get("port")
        if port is not None and not 1 <= port <= 65535:
            raise ValidationError("A port is a number from 1 to 65535.")
        return port

    def clean_ssh_private_key(self) -> bytes | None:
        upload = self.cleaned_data.get("ssh_private_key")
        if not upload:
            return None
        data = _read(upload)
        try:
            load_private_key(data)
        except SSHMaterialError as exc:
            raise ValidationError(str(exc)) from None
        return data

    def clean_tls_ca_cert(self) -> bytes | None:
        return _certificate(self.cleaned_data.get("tls_ca_cert"))

    def clean_tls_client_cert(self) -> bytes | None:
        return _certificate(self.cleaned_data.get("tls_client_cert"))

    def clean_tls_client_key(self) -> bytes | None:
        upload = self.cleaned_data.get("tls_client_key")
        if not upload:
            return None
        data = _read(upload)
        try:
            serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise ValidationError("The key is protected by a passphrase; upload an unencrypted key.") from None
        except ValueError:
            raise ValidationError("That file is not a PEM private key.") from None
        return data

    def clean_sasl_username(self) -> str:
        value = self.cleaned_data["sasl_username"].strip()
        if value and not SASL_USER_RE.match(value):
            raise ValidationError("A SASL user name has no spaces, quotes or control characters.")
        return value

    def clean_sasl_password(self) -> str:
        value = self.cleaned_data["sasl_password"]
        if any(ord(character) < 32 for character in value):
            raise ValidationError("The password cannot hold control characters or line breaks.")
        return value

    def clean_ssh_host_key_fingerprint(self) -> str:
        value = self.cleaned_data["ssh_host_key_fingerprint"].strip()
        if value and not FINGERPRINT_RE.match(value):
            raise ValidationError("Give the fingerprint as ssh-keygen -l prints it, like SHA256:<43 characters>.")
        return value

    def clean(self) -> dict:
        data = super().clean()
        transport = data.get("transport")
        if transport in REMOTE:
            self._clean_remote(data, transport)
        elif transport == Transport.TEST:
            self._clean_test_driver(data)
        elif transport == Transport.LOCAL:
            self._clean_local()
        return data

    def _clean_remote(self, data: dict, transport: str) -> None:
        try:
            data["address"] = validate_address(data.get("address", ""))
        except ValidationError as exc:
            self.add_error("address", exc)
        if transport == Transport.SSH:
            try:
                data["username"] = validate_username((data.get("username") or "root").strip())
            except ValidationError as exc:
                self.add_error("username", exc)
        if transport == Transport.TLS:
            self._require_tls_files(data)
        if transport in (Transport.TCP, Transport.TLS):
            self._check_sasl_login(data)

    def _check_sasl_login(self, data: dict) -> None:
        user, password = data.get("sasl_username"), data.get("sasl_password")
        if password and not user and "sasl_username" not in self.errors:
            self.add_error("sasl_username", "Give the SASL user that this password belongs to.")
        stored = self.instance is not None and self.instance.has_sasl_login
        if user and not password and not stored and "sasl_password" not in self.errors:
            self.add_error("sasl_password", "Give the SASL user's password.")

    def _require_tls_files(self, data: dict) -> None:
        has_files = self.instance is not None and self.instance.has_tls_files
        for field in TLS_FILES:
            if not data.get(field) and not has_files and field not in self.errors:
                self.add_error(field, "Required for a TLS connection.")

    def _clean_test_driver(self, data: dict) -> None:
        path = (data.get("test_driver_file") or "").strip()
        try:
            validate_test_driver_path(path)
        except ValidationError as exc:
            self.add_error("test_driver_file", exc)
            return
        if path != "default" and not Path(path).is_file():
            self.add_error("test_driver_file", f"{path} does not exist on the vmsite server.")
        data["address"] = path

    def _clean_local(self) -> None:
        others = Host.objects.filter(transport=Transport.LOCAL)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            self.add_error("transport", "This machine's libvirt is already registered.")

    def host_fields(self) -> dict:
        """The validated values as keyword arguments for hosts.services.host_create/host_update."""
        data = self.cleaned_data
        transport = data["transport"]
        remote = transport in REMOTE
        return {
            "name": data["name"],
            "transport": transport,
            "address": data["address"] if remote or transport == Transport.TEST else "",
            "port": data.get("port") if remote else None,
            "username": data["username"] if transport == Transport.SSH else "",
            "enabled": data.get("enabled", False),
            "tls_files": {TLS_FILES[f]: data[f] for f in TLS_FILES if data.get(f)} if transport == Transport.TLS else None,
            "private_key": data.get("ssh_private_key") if transport == Transport.SSH else None,
            "sasl_username": data.get("sasl_username", "") if transport in (Transport.TCP, Transport.TLS) else "",
            "sasl_password": data.get("sasl_password", "") if transport in (Transport.TCP, Transport.TLS) else "",
        }


class PageHostForm(HostForm):
    """The pages' form: they scan the host's key and ask the administrator to confirm what they see."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["ssh_host_key_fingerprint"]


def _initial(host: Host) -> dict:
    initial = {"name": host.name, "transport": host.transport, "address": host.address, "port": host.port,
               "username": host.username, "enabled": host.enabled, "sasl_username": host.sasl_username}
    if host.transport == Transport.TEST:
        initial.update(address="", test_driver_file=host.address)
    return initial


def _read(upload) -> bytes:
    if upload.size > MAX_UPLOAD:
        raise ValidationError(f"That file is too large ({upload.size} bytes; at most {MAX_UPLOAD}).")
    return upload.read()


def _certificate(upload) -> bytes | None:
    if not upload:
        return None
    data = _read(upload)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValidationError("That file is not a PEM certificate.") from None
    return data

