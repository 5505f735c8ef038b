"""The URI vmsite itself connects with: the host's validated URI plus options that only vmsite
sets (its own key file, its strict ssh command, its TLS folder). Users never supply these."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings

from hosts.choices import Transport
from hosts.models import Host
from hosts.ssh import write_ssh_command


def host_files_dir(host: Host) -> Path:
    return settings.DATA_DIR / "hosts" / str(host.pk)


def connect_uri(host: Host) -> str:
    if host.transport == Transport.SSH:
        return f"{host.uri}?{urlencode(_ssh_options(host))}"
    if host.transport == Transport.TLS and host.tls_dir:
        return f"{host.uri}?{urlencode({'pkipath': host.tls_dir})}"
    return host.uri


def _ssh_options(host: Host) -> dict[str, str]:
    command = write_ssh_command(host_files_dir(host), host.ssh_host_keys)
    options = {"command": str(command), "no_tty": "1"}
    if host.ssh_key is not None:
        options["keyfile"] = host.ssh_key.private_key_path
    return options
