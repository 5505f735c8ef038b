from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError

from hosts.forms import TLS_FILES, HostForm
from hosts.services import host_create


class Command(BaseCommand):
    help = "Register a libvirt host, with the same validation as the web form, and queue its connect operation."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--transport", required=True, help="local, ssh, tls, tcp or test")
        parser.add_argument("--address", default="")
        parser.add_argument("--port", type=int)
        parser.add_argument("--user", default="root")
        parser.add_argument("--ssh-private-key", type=Path, help="file with an unencrypted private key")
        parser.add_argument("--tls-ca-cert", type=Path)
        parser.add_argument("--tls-client-cert", type=Path)
        parser.add_argument("--tls-client-key", type=Path)
        parser.add_argument("--sasl-user", default="", help="the host's libvirtd SASL user (TCP or TLS)")
        parser.add_argument("--sasl-password-file", type=Path,
                            help="a file holding the SASL password (not on the command line, where ps shows it)")
        parser.add_argument("--test-driver-file", default="")
        parser.add_argument("--disabled", action="store_true")

    def handle(self, *args, **options) -> None:
        data = {
            "name": options["name"], "transport": options["transport"], "address": options["address"],
            "port": options["port"] or "", "username": options["user"], "test_driver_file": options["test_driver_file"],
            "enabled": "" if options["disabled"] else "on", "sasl_username": options["sasl_user"],
            "sasl_password": _password(options["sasl_password_file"]),
        }
        form = HostForm(data, _files(options))
        if not form.is_valid():
            raise CommandError(_errors(form))
        host, operation = host_create(user=None, **form.host_fields())
        self.stdout.write(f"Registered host {host.name} ({host.uri}); connect operation #{operation.pk} queued.")


def _files(options: dict) -> dict:
    names = ["ssh_private_key", *TLS_FILES]
    files = {}
    for name in names:
        path = options.get(name)
        if path is not None:
            try:
                files[name] = SimpleUploadedFile(path.name, path.read_bytes())
            except OSError as exc:
                raise CommandError(f"--{name.replace('_', '-')}: cannot read {path}: {exc.strerror}") from None
    return files


def _password(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text().rstrip("\n")
    except OSError as exc:
        raise CommandError(f"--sasl-password-file: cannot read {path}: {exc.strerror}") from None


def _errors(form: HostForm) -> str:
    lines = []
    for field, errors in form.errors.items():
        label = "host" if field == "__all__" else field.replace("_", "-")
        lines.extend(f"{label}: {error}" for error in errors)
    return "\n".join(lines)
