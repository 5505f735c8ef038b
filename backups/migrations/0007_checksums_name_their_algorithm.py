"""Restore points' checksums name their algorithm ("sha256:<hex>", "blake3:<hex>"): the points
recorded so far were hashed with SHA-256, and new ones are hashed with BLAKE3 (virt/checksums.py)."""
from django.db import migrations, models
from django.db.models import F, Value
from django.db.models.functions import Concat, Substr

SHA256 = "sha256:"


def label_as_sha256(apps, schema_editor):
    apps.get_model("backups", "RestorePointDisk").objects.exclude(checksum__contains=":").update(
        checksum=Concat(Value(SHA256), F("checksum")))
    for copy in apps.get_model("backups", "RestorePointCopy").objects.all():
        copy.checksums = {target: value if ":" in value else SHA256 + value for target, value in copy.checksums.items()}
        copy.save(update_fields=["checksums"])


def unlabel_sha256(apps, schema_editor):
    disks = apps.get_model("backups", "RestorePointDisk").objects
    copies = apps.get_model("backups", "RestorePointCopy").objects.all()
    if disks.exclude(checksum__startswith=SHA256).exists() or any(
            not value.startswith(SHA256) for copy in copies for value in copy.checksums.values()):
        raise RuntimeError("Some restore points were hashed with BLAKE3, which the older schema cannot record.")
    disks.update(checksum=Substr(F("checksum"), len(SHA256) + 1))
    for copy in copies:
        copy.checksums = {target: value[len(SHA256):] for target, value in copy.checksums.items()}
        copy.save(update_fields=["checksums"])


class Migration(migrations.Migration):

    dependencies = [
        ('backups', '0006_job_retention_tags_health_check'),
    ]

    operations = [
        migrations.AlterField(model_name='restorepointdisk', name='sha256', field=models.CharField(max_length=80)),
        migrations.RenameField(model_name='restorepointdisk', old_name='sha256', new_name='checksum'),
        migrations.RenameField(model_name='restorepointcopy', old_name='sha256s', new_name='checksums'),
        migrations.RunPython(label_as_sha256, unlabel_sha256),
    ]
