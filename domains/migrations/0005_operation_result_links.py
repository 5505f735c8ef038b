"""Operations recorded before an operation's page link was stored on its row (operations 0005):
link each to the VM it acted on or created, as the page found it then."""
from django.db import migrations
from django.urls import reverse


def link_operations(apps, schema_editor):
    Domain = apps.get_model("domains", "Domain")
    Operation = apps.get_model("operations", "Operation")
    names = dict(Domain.objects.values_list("pk", "name"))
    for operation in Operation.objects.filter(result_url="", target_type="domain").exclude(kind="domain.delete"):
        if operation.target_id in names:
            _link(operation, operation.target_id, names[operation.target_id])
    for operation in Operation.objects.filter(result_url="", kind="domain.create"):
        made = Domain.objects.filter(host_id=operation.host_id, name=operation.arguments.get("name")).first()
        if made is not None:
            _link(operation, made.pk, made.name)


def _link(operation, pk: int, name: str) -> None:
    operation.result_url, operation.result_label = reverse("domains:detail", args=[pk]), name
    operation.save(update_fields=["result_url", "result_label"])


class Migration(migrations.Migration):

    dependencies = [
        ("domains", "0004_xml"),
        ("operations", "0005_result_link"),
    ]

    operations = [migrations.RunPython(link_operations, migrations.RunPython.noop)]
