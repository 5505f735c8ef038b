"""Operations recorded before an operation's page link was stored on its row (operations 0005):
link each to the network it acted on or created, as the page found it then."""
from django.db import migrations
from django.urls import reverse


def link_operations(apps, schema_editor):
    VirtualNetwork = apps.get_model("networking", "VirtualNetwork")
    Operation = apps.get_model("operations", "Operation")
    names = dict(VirtualNetwork.objects.values_list("pk", "name"))
    for operation in (Operation.objects.filter(result_url="", target_type="virtualnetwork")
                      .exclude(kind="network.delete")):
        if operation.target_id in names:
            _link(operation, operation.target_id, names[operation.target_id])
    for operation in Operation.objects.filter(result_url="", kind="network.create"):
        made = VirtualNetwork.objects.filter(host_id=operation.host_id, name=operation.arguments.get("name")).first()
        if made is not None:
            _link(operation, made.pk, made.name)


def _link(operation, pk: int, name: str) -> None:
    operation.result_url = reverse("networking:detail", args=[pk])
    operation.result_label = f"the network {name}"
    operation.save(update_fields=["result_url", "result_label"])


class Migration(migrations.Migration):

    dependencies = [
        ("networking", "0002_details_leases_interfaces_filters"),
        ("operations", "0005_result_link"),
    ]

    operations = [migrations.RunPython(link_operations, migrations.RunPython.noop)]
