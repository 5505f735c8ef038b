"""One operation frame: one operation at a time per object, for every kind, and no action the
object's state does not allow, refused alike by the page, the API and the bulk form."""
import threading
import time
import uuid

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Grant, Role
from api.tokens import api_token_issue
from domains.choices import DomainState
from domains.models import Domain
from hosts.models import Host
from operations import services
from operations.models import Operation
from storage import services as storage_services
from storage.models import StoragePool


@pytest.fixture
def host(db):
    return Host.objects.create(name="unreachable", transport="tcp", address="127.0.0.1", port=1)


def running_vm(host: Host) -> Domain:
    return Domain.objects.create(host=host, uuid=uuid.uuid4(), name="web1", synced_at=timezone.now(),
                                 state=DomainState.RUNNING)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_enqueues_on_one_pool_yield_one_operation_and_one_refusal(redis_ready, monkeypatch, settings):
    """Both requests read "idle" within the same window unless the pool's row is locked first: the
    pause after the read makes that window wide (on PostgreSQL; SQLite runs one writer at a time)."""
    # A queue no worker reads: a worker of an earlier test would otherwise finish the first
    # operation (its host is unreachable) before the second request looks, and rightly let it in.
    settings.OPERATIONS_QUEUE = "vmsite-frame-race-unread"
    host = Host.objects.create(name="unreachable", transport="tcp", address="127.0.0.1", port=1)
    pool = StoragePool.objects.create(host=host, uuid=uuid.uuid4(), name="images", pool_type="dir",
                                      synced_at=timezone.now())
    read_busy = services.operation_busy_with

    def slow_read(target):
        found = read_busy(target)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(services, "operation_busy_with", slow_read)
    start, results = threading.Barrier(2), []

    def request() -> None:
        try:
            start.wait()
            results.append(storage_services.pool_action_enqueue(pool=pool, action="refresh", user=None))
        except Exception as exc:  # noqa: BLE001 - the test sorts what each thread met below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    operations = list(Operation.objects.filter(target_type="storagepool", target_id=pool.pk))
    assert len(operations) == 1, results
    refusals = [r for r in results if isinstance(r, storage_services.StorageBusy)]
    assert len(refusals) == 1, results
    assert str(refusals[0]) == (f"busy: pool.refresh #{operations[0].pk} is pending; "
                                "try again when it has finished")
    services.operation_cancel(operation=operations[0])
    redis_ready.delete(settings.OPERATIONS_QUEUE)  # the task no worker was meant to read


def test_a_running_vm_is_not_started_again_from_its_page(host, django_user_model, client):
    domain = running_vm(host)
    operator = django_user_model.objects.create_user("op", password="x")
    Grant.objects.create(user=operator, domain=domain, role=Role.OPERATOR)  # the smallest grant that may act
    client.force_login(operator)
    response = client.post(reverse("domains:action", args=[domain.pk, "start"]), follow=True)
    assert "Start is not possible while web1 is running." in response.content.decode()
    assert not Operation.objects.exists()


def test_a_running_vm_is_not_started_again_through_the_api(host, django_user_model, redis_ready):
    domain = running_vm(host)
    operator = django_user_model.objects.create_user("op", password="x")
    Grant.objects.create(user=operator, domain=domain, role=Role.OPERATOR)
    _row, token = api_token_issue(user=operator, name="tests", days=None)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = api.post(reverse("api:vm_action", args=[domain.pk]), {"action": "start"}, format="json")
    assert response.status_code == 409
    assert response.json()["detail"] == "Start is not possible while web1 is running."
    assert not Operation.objects.exists()


def test_the_bulk_form_names_a_vm_whose_state_refuses_the_action(host, admin_client):
    domain = running_vm(host)
    response = admin_client.post(reverse("domains:bulk"), {"action": "start", "domains": [domain.pk]}, follow=True)
    assert "web1: Start is not possible while web1 is running." in response.content.decode()
    assert not Operation.objects.exists()


def test_a_state_that_allows_the_action_queues_it(host):
    domain = running_vm(host)
    from domains.services import domain_action_enqueue

    operation = domain_action_enqueue(domain=domain, action="shutdown", user=None)
    assert operation.kind == "domain.shutdown"


def test_the_state_is_read_under_the_lock_not_from_the_callers_copy(host):
    """A page read the VM as shut off; it has started since: the row, not the copy, decides."""
    domain = running_vm(host)
    stale = Domain.objects.get(pk=domain.pk)
    stale.state = DomainState.SHUTOFF
    from domains.services import ActionNotAllowed, domain_action_enqueue

    with pytest.raises(ActionNotAllowed, match="while web1 is running"):
        domain_action_enqueue(domain=stale, action="start", user=None)


@pytest.fixture
def busy_volume(host):
    """An active pool, a volume in it, and an unfinished wipe of that volume."""
    from storage.models import Volume

    pool = StoragePool.objects.create(host=host, uuid=uuid.uuid4(), name="images", pool_type="dir", active=True,
                                      available=1 << 30, synced_at=timezone.now())
    volume = Volume.objects.create(host=host, pool=pool, key="/images/disk.raw", name="disk.raw", format="raw",
                                   capacity=1 << 20, synced_at=timezone.now())
    wipe = storage_services.volume_action_enqueue(volume=volume, action="wipe", user=None)
    return pool, volume, wipe


def test_an_upload_into_a_busy_volume_is_refused_on_the_page(busy_volume, admin_client):
    pool, volume, wipe = busy_volume
    response = admin_client.post(reverse("storage:upload", args=[pool.pk]), {"volume": volume.pk, "size": 1024})
    assert response.status_code == 409
    assert response.json()["errors"]["__all__"] == [f"{volume} is busy: volume.wipe #{wipe.pk} is pending; "
                                                    "try again when it has finished"]
    assert list(Operation.objects.all()) == [wipe]


def test_an_upload_into_a_busy_volume_is_refused_through_the_api(busy_volume, admin_user, redis_ready):
    pool, volume, wipe = busy_volume
    _row, token = api_token_issue(user=admin_user, name="tests", days=None)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = api.post(reverse("api:upload_start", args=[pool.pk]), {"volume": volume.pk, "size": 1024},
                        format="json")
    assert response.status_code == 409
    assert response.json()["detail"] == f"busy: volume.wipe #{wipe.pk} is pending; try again when it has finished"
    assert list(Operation.objects.all()) == [wipe]


def test_uploads_of_new_volumes_into_one_pool_run_side_by_side(busy_volume, admin_client):
    pool, _volume, _wipe = busy_volume
    for name in ("a.iso", "b.iso"):
        response = admin_client.post(reverse("storage:upload", args=[pool.pk]), {"name": name, "size": 1024})
        assert response.status_code == 200, response.content
    assert Operation.objects.filter(kind="volume.upload").count() == 2
