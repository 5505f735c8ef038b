"""Host credentials move into the credential store (hosts/credentials.py): each SSH private key file
and each host's TLS folder is sealed into its row, the path columns are dropped, and the files are
removed once the migration has committed. A file that is gone is reported and left unsealed (the
host then asks for it on its form). Going back writes the files again where they were."""
import shutil
import sys
from pathlib import Path

from django.conf import settings
from django.db import migrations, models, transaction

from vmsite import secretbox

TLS_FIELDS = {"cacert.pem": "tls_ca_sealed", "clientcert.pem": "tls_cert_sealed", "clientkey.pem": "tls_key_sealed"}


def ssh_key_context(key_id: int) -> str:
    return f"ssh-private-key:sshkey:{key_id}"  # as hosts.credentials.ssh_key_context


def tls_context(host_id: int, filename: str) -> str:
    return f"tls-{filename}:host:{host_id}"  # as hosts.credentials.tls_context


def _read(path: Path, what: str) -> str | None:
    try:
        return path.read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"\n  {what}: cannot read {path} ({exc}); enter it again on the host's form.", file=sys.stderr)
        return None


def seal_files(apps, schema_editor) -> None:
    moved: list[Path] = []
    for key in apps.get_model("hosts", "SSHKey").objects.exclude(private_key_path=""):
        path = settings.DATA_DIR / key.private_key_path
        text = _read(path, f"SSH key {key.name}")
        if text is not None:
            key.private_key_sealed = secretbox.seal(text, context=ssh_key_context(key.pk))
            key.save(update_fields=["private_key_sealed"])
            moved.append(path)
    for host in apps.get_model("hosts", "Host").objects.exclude(tls_dir=""):
        folder = settings.DATA_DIR / host.tls_dir
        for filename, field in TLS_FIELDS.items():
            text = _read(folder / filename, f"TLS file of host {host.name}")
            if text is not None:
                setattr(host, field, secretbox.seal(text, context=tls_context(host.pk, filename)))
        host.save(update_fields=list(TLS_FIELDS.values()))
        moved.append(folder)
    transaction.on_commit(lambda: _remove(moved))


def _remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def write_files(apps, schema_editor) -> None:
    for key in apps.get_model("hosts", "SSHKey").objects.exclude(private_key_sealed=""):
        path = settings.DATA_DIR / "ssh" / ("id_ed25519" if key.name == "vmsite" else f"keys/key-{key.pk}")
        _write(path, secretbox.unseal(key.private_key_sealed, context=ssh_key_context(key.pk)))
        key.private_key_path = str(path)
        key.save(update_fields=["private_key_path"])
    for host in apps.get_model("hosts", "Host").objects.exclude(tls_key_sealed=""):
        folder = settings.DATA_DIR / "hosts" / str(host.pk) / "pki"
        for filename, field in TLS_FIELDS.items():
            if getattr(host, field):
                _write(folder / filename, secretbox.unseal(getattr(host, field), context=tls_context(host.pk, filename)))
        host.tls_dir = str(folder)
        host.save(update_fields=["tls_dir"])


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text, "ascii")


class Migration(migrations.Migration):

    dependencies = [
        ("hosts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(model_name="sshkey", name="private_key_sealed", field=models.TextField(blank=True)),
        migrations.AddField(model_name="host", name="tls_ca_sealed", field=models.TextField(blank=True)),
        migrations.AddField(model_name="host", name="tls_cert_sealed", field=models.TextField(blank=True)),
        migrations.AddField(model_name="host", name="tls_key_sealed", field=models.TextField(blank=True)),
        migrations.AddField(model_name="host", name="sasl_username", field=models.CharField(blank=True, max_length=255)),
        migrations.AddField(model_name="host", name="sasl_password_sealed", field=models.TextField(blank=True)),
        migrations.AlterField(model_name="sshkey", name="private_key_path", field=models.CharField(blank=True, max_length=500)),
        migrations.RunPython(seal_files, write_files, elidable=False),
        migrations.RemoveField(model_name="sshkey", name="private_key_path"),
        migrations.RemoveField(model_name="host", name="tls_dir"),
    ]
