"""Second-factor secrets sealed at rest (vmsite/secretbox.py): the plaintext column is sealed row by
row into `sealed_secret`, then dropped. Going back opens them again."""
from django.db import migrations, models

from vmsite import secretbox


def context(user_id: int) -> str:
    return f"accounts.totp-secret:user:{user_id}"  # as accounts.models.totp_secret_context


def seal_secrets(apps, schema_editor) -> None:
    devices = apps.get_model("accounts", "TOTPDevice")
    for device in devices.objects.all():
        device.sealed_secret = secretbox.seal(device.secret, context=context(device.user_id))
        device.save(update_fields=["sealed_secret"])


def open_secrets(apps, schema_editor) -> None:
    devices = apps.get_model("accounts", "TOTPDevice")
    for device in devices.objects.all():
        device.secret = secretbox.unseal(device.sealed_secret, context=context(device.user_id))
        device.save(update_fields=["secret"])


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0004_alter_auditevent_action"),
    ]

    operations = [
        migrations.AddField(model_name="totpdevice", name="sealed_secret",
                            field=models.CharField(default="", max_length=255), preserve_default=False),
        migrations.AlterField(model_name="totpdevice", name="secret",
                              field=models.CharField(default="", max_length=64)),
        migrations.RunPython(seal_secrets, open_secrets, elidable=False),
        migrations.RemoveField(model_name="totpdevice", name="secret"),
    ]
