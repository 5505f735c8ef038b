"""A cloud-init NoCloud seed: user-data and meta-data on an ISO 9660 image labelled "cidata"."""
from __future__ import annotations

import json
import subprocess
import tempfile
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

SEED_LIMIT = 1024 * 1024


def hash_password(password: str) -> str:
    """SHA-512 crypt, the form cloud-init's `passwd` takes: the plain password is never stored.
    The password goes to openssl on stdin, never on a command line other processes can read."""
    result = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n", capture_output=True,
                            text=True, timeout=10, check=True)
    return result.stdout.strip()


def cloud_config(*, hostname: str, user: str, ssh_keys: list[str], password_hash: str | None) -> str:
    """A #cloud-config document. JSON is YAML, so no YAML library is needed to write one."""
    account: dict = {"name": user, "groups": ["sudo"], "shell": "/bin/bash",
                     "sudo": "ALL=(ALL) NOPASSWD:ALL", "ssh_authorized_keys": ssh_keys}
    if password_hash:
        account["passwd"] = password_hash
        account["lock_passwd"] = False
    config = {"hostname": hostname, "users": [account], "ssh_pwauth": bool(password_hash)}
    return "#cloud-config\n" + json.dumps(config, indent=2) + "\n"


def user_data(config: str, extra: str) -> str:
    """The generated cloud-config, plus the user's own part (cloud-config or a script) if any."""
    if not extra.strip():
        return config
    message = MIMEMultipart()
    message.attach(MIMEText(config, "cloud-config"))
    subtype = "x-shellscript" if extra.startswith("#!") else "cloud-config"
    message.attach(MIMEText(extra, subtype))
    return message.as_string()


def meta_data(*, instance_id: str, hostname: str) -> str:
    return json.dumps({"instance-id": instance_id, "local-hostname": hostname}) + "\n"


def seed_iso(*, user_data_text: str, meta_data_text: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "user-data").write_text(user_data_text)
        (root / "meta-data").write_text(meta_data_text)
        result = subprocess.run(
            ["genisoimage", "-quiet", "-output", "-", "-volid", "cidata", "-joliet", "-rock",
             str(root / "user-data"), str(root / "meta-data")],
            capture_output=True, timeout=60, check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"genisoimage failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout
