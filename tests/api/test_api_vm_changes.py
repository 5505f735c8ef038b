"""VM changes through the API: the page's form decides what is accepted, the page's service queues
it, a real worker applies it to the real libvirtd; roles are enforced per route."""
import pytest
from django.utils import timezone

from domains.models import Domain
from hosts.models import Host
from operations.choices import OperationState
from operations.models import Operation
from tests import stack
from tests.domains.helpers import cached
from tests.domains.test_config import CONFIG, define_guest, xml_of

pytestmark = [pytest.mark.django_db]


def finished(client, answer) -> dict:
    assert answer.status_code == 202, answer.content
    url = answer.json()["url"]
    stack.wait_until(lambda: client.get(url).json()["state"] in (OperationState.SUCCEEDED, OperationState.FAILED),
                     timeout=60, message="the operation to finish")
    return client.get(url).json()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_memory_and_boot_order_change_through_the_api(celery_worker, local_libvirt, guests, api_as):
    from hosts.services import host_register_local

    host, _ = host_register_local()
    guest = define_guest(guests, cdrom=True)
    domain = cached(host, guest)
    operator = api_as("operator", host=host)
    result = finished(operator, operator.post(f"/api/v1/vms/{domain.pk}/memory/",
                                              {"memory_mib": 48, "maximum_mib": 64, "persistent": True},
                                              format="json"))
    assert result["state"] == "succeeded", result["error"]
    assert xml_of(guest, CONFIG).findtext("currentMemory") == str(48 * 1024)
    result = finished(operator, operator.post(f"/api/v1/vms/{domain.pk}/boot-order/",
                                              {"first": "cdrom", "second": "hd"}, format="json"))
    assert result["message"] == "Boot order set to cdrom, hd (from the next start)"


@pytest.fixture
def vm(db):
    host = Host.objects.create(name="changes", transport="test", address="default")
    return Domain.objects.create(host=host, uuid="6695eb01-f6a4-8304-79aa-97f2502e1c01", name="changed",
                                 synced_at=timezone.now(), vcpus=1, memory_kib=65536)


def test_the_forms_refusals_come_back_per_field(api_as, vm):
    admin = api_as("admin")
    answer = admin.post(f"/api/v1/vms/{vm.pk}/memory/", {"memory_mib": -5, "persistent": True}, format="json")
    assert answer.status_code == 400 and "memory_mib" in answer.json()
    answer = admin.post(f"/api/v1/vms/{vm.pk}/snapshots/create/", {"name": "../x"}, format="json")
    assert answer.status_code == 400 and answer.json()["name"]
    answer = admin.post(f"/api/v1/vms/{vm.pk}/boot-order/", {"first": "toaster"}, format="json")
    assert answer.status_code == 400 and "first" in answer.json()
    assert not Operation.objects.exists()


def test_each_change_route_keeps_the_pages_rules(api_as, vm):
    viewer, operator = api_as("viewer", host=vm.host), api_as("operator", host=vm.host)
    vm_operator = api_as("operator", domain=vm)
    assert viewer.post(f"/api/v1/vms/{vm.pk}/vcpus/", {"vcpus": 1}, format="json").status_code == 403
    assert operator.post(f"/api/v1/vms/{vm.pk}/xml/", {"xml": "<domain/>"}, format="json").status_code == 403
    assert vm_operator.post(f"/api/v1/vms/{vm.pk}/clone/", {"name": "copy"}, format="json").status_code == 403
    assert api_as("nobody").post(f"/api/v1/vms/{vm.pk}/vcpus/", {"vcpus": 1}, format="json").status_code == 404
    assert not Operation.objects.exists()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_vm_is_created_through_the_api_with_the_wizards_fields(celery_worker, scratch_pool, guests, api_as):
    import libvirt

    from inventory.reconcile import host_reconcile
    from hosts.services import host_register_local
    from tests.domains.test_create import LOCAL, new_name, valid_data

    host, _ = host_register_local()
    host_reconcile(host=host, fresh=True)
    operator = api_as("operator", host=host)
    name = new_name(guests)
    refused = operator.post(f"/api/v1/hosts/{host.pk}/vms/",
                            valid_data(host, scratch_pool, name, memory_mib=0, start_now=None), format="json")
    assert refused.status_code == 400 and "memory_mib" in refused.json() and not Operation.objects.exists()
    data = {**valid_data(host, scratch_pool, name, start_now=None), "vnc": True, "serial": True}
    result = finished(operator, operator.post(f"/api/v1/hosts/{host.pk}/vms/", data, format="json"))
    assert result["state"] == "succeeded", result["error"]
    assert libvirt.open(LOCAL).lookupByName(name).info()[1] == 64 * 1024
    assert api_as("viewer", host=host).post(f"/api/v1/hosts/{host.pk}/vms/", data, format="json").status_code == 403
