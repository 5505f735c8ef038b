"""The REST API through tokens: reads filtered by grants, actions queued as operations that a real
worker carries out on the real libvirtd, the pages' validation, and the refusals."""
import json

import libvirt
import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditAction, AuditEvent
from api.models import ApiToken
from domains.models import Domain
from hosts.models import Host
from operations.models import Operation
from tests import stack
from tests.domains.helpers import LOCAL, cached

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def test_host(db):
    return Host.objects.create(name="apitest", transport="test", address="default")


@pytest.fixture
def vm(test_host):
    return Domain.objects.create(host=test_host, uuid="6695eb01-f6a4-8304-79aa-97f2502e1a01", name="api-vm",
                                 synced_at=timezone.now())


def test_without_a_token_the_api_answers_401_and_names_the_scheme():
    response = APIClient().get("/api/v1/vms/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_token_is_refused_counted_and_audited(vm):
    client = APIClient()
    for token in ("vms_nope_nope", "garbage", "vms_" + "a" * 8 + "_" + "b" * 43):
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        assert client.get("/api/v1/vms/").status_code == 401
    assert AuditEvent.objects.filter(action=AuditAction.TOKEN_REFUSED).count() == 3


def test_guessing_tokens_locks_the_address_out_even_for_a_good_token(api_as, vm):
    good = api_as("admin")
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer vms_00000000_guess")
    for _ in range(20):
        bad.get("/api/v1/vms/")
    response = good.get("/api/v1/vms/")
    assert response.status_code == 401 and "Too many failed attempts" in response.json()["detail"]


def test_expired_revoked_and_disabled_users_tokens_stop_working(api_as, vm):
    client = api_as("admin")
    assert client.get("/api/v1/vms/").status_code == 200
    ApiToken.objects.filter(user=client.user).update(expires_at=timezone.now())
    assert client.get("/api/v1/vms/").status_code == 401

    client = api_as("admin")
    client.user.is_active = False
    client.user.save()
    assert client.get("/api/v1/vms/").status_code == 401

    client = api_as("admin")
    ApiToken.objects.filter(user=client.user).delete()
    assert client.get("/api/v1/vms/").status_code == 401


def test_only_the_tokens_digest_is_stored(api_as):
    client = api_as("admin")
    row = ApiToken.objects.get(user=client.user)
    token = client._credentials["HTTP_AUTHORIZATION"].split()[1]
    assert token.startswith(f"vms_{row.prefix}_") and token not in json.dumps(list(ApiToken.objects.values()),
                                                                                default=str)


def test_lists_show_only_what_is_granted(api_as, vm, test_host):
    other_host = Host.objects.create(name="other", transport="test", address="default")
    Domain.objects.create(host=other_host, uuid="6695eb01-f6a4-8304-79aa-97f2502e1a02", name="hidden-vm",
                          synced_at=timezone.now())
    viewer = api_as("viewer", host=test_host)
    names = [row["name"] for row in viewer.get("/api/v1/vms/").json()["results"]]
    assert names == ["api-vm"]
    assert [row["name"] for row in viewer.get("/api/v1/hosts/").json()["results"]] == ["apitest"]
    assert api_as("nobody").get("/api/v1/vms/").json()["count"] == 0
    assert api_as("admin").get("/api/v1/vms/").json()["count"] == 2
    by_vm = api_as("viewer", domain=vm)
    assert [row["name"] for row in by_vm.get("/api/v1/vms/").json()["results"]] == ["api-vm"]
    assert by_vm.get("/api/v1/hosts/").json()["count"] == 0


def test_filters_and_pages(api_as, test_host):
    for index in range(5):
        Domain.objects.create(host=test_host, uuid=f"6695eb01-f6a4-8304-79aa-97f2502e1b0{index}", name=f"vm{index}",
                              synced_at=timezone.now(), state=1 if index % 2 else 5)
    admin = api_as("admin")
    page = admin.get("/api/v1/vms/?limit=2&offset=1").json()
    assert page["count"] == 5 and [row["name"] for row in page["results"]] == ["vm1", "vm2"]
    assert admin.get("/api/v1/vms/?state=running").json()["count"] == 2
    assert admin.get("/api/v1/vms/?search=vm4").json()["count"] == 1
    assert admin.get(f"/api/v1/vms/?host_id={test_host.pk + 1000}").json()["count"] == 0
    assert admin.get("/api/v1/vms/?host_id=notanumber").json()["count"] == 0
    assert admin.get(f"/api/v1/vms/?host_id={2**70}").json()["count"] == 0
    assert len(admin.get("/api/v1/vms/?limit=-3").json()["results"]) == 5  # a bad limit: the default page


def test_a_viewer_can_read_but_change_nothing(api_as, vm, test_host):
    viewer = api_as("viewer", host=test_host)
    assert viewer.get(f"/api/v1/vms/{vm.pk}/").status_code == 200
    before = Operation.objects.count()
    assert viewer.post(f"/api/v1/vms/{vm.pk}/actions/", {"action": "start"}, format="json").status_code == 403
    assert viewer.post(f"/api/v1/vms/{vm.pk}/rename/", {"name": "x"}, format="json").status_code == 403
    assert viewer.delete(f"/api/v1/vms/{vm.pk}/?confirm_name=api-vm").status_code == 403
    assert viewer.post(f"/api/v1/hosts/{test_host.pk}/sync/").status_code == 403
    assert viewer.patch(f"/api/v1/hosts/{test_host.pk}/", {"name": "renamed"}, format="json").status_code == 403
    assert Operation.objects.count() == before
    assert Host.objects.get(pk=test_host.pk).name == "apitest"


def test_someone_without_a_grant_does_not_learn_the_vm_exists(api_as, vm):
    nobody = api_as("nobody")
    assert nobody.get(f"/api/v1/vms/{vm.pk}/").status_code == 404
    assert nobody.post(f"/api/v1/vms/{vm.pk}/actions/", {"action": "start"}, format="json").status_code == 404
    assert nobody.get(f"/api/v1/vms/{vm.pk + 999}/").status_code == 404


def test_an_operator_action_answers_202_with_the_operation(api_as, vm, test_host):
    operator = api_as("operator", host=test_host)
    response = operator.post(f"/api/v1/vms/{vm.pk}/actions/", {"action": "start"}, format="json")
    assert response.status_code == 202
    operation = Operation.objects.get(pk=response.json()["operation"])
    assert operation.kind == "domain.start" and operation.user == operator.user
    assert operator.get(response.json()["url"]).json()["state"] == "pending"
    busy = operator.post(f"/api/v1/vms/{vm.pk}/actions/", {"action": "force_off"}, format="json")
    assert busy.status_code == 409 and "busy" in busy.json()["detail"]


def test_bad_input_gets_the_forms_messages_and_changes_nothing(api_as, vm, test_host):
    admin = api_as("admin")
    before = (Operation.objects.count(), Host.objects.count())
    answer = admin.post(f"/api/v1/vms/{vm.pk}/actions/", {"action": "explode"}, format="json")
    assert answer.status_code == 400 and "action" in answer.json()
    answer = admin.post(f"/api/v1/vms/{vm.pk}/rename/", {"name": "a/b"}, format="json")
    assert answer.status_code == 400 and answer.json()["name"]
    answer = admin.delete(f"/api/v1/vms/{vm.pk}/?confirm_name=wrong")
    assert answer.status_code == 400 and "Type api-vm exactly" in answer.json()["confirm_name"][0]
    answer = admin.post("/api/v1/hosts/", {"name": "h1", "transport": "ssh", "address": "host;rm -rf /"},
                        format="json")
    assert answer.status_code == 400 and "address" in answer.json()
    answer = admin.post("/api/v1/hosts/", ["a", "list"], format="json")
    assert answer.status_code == 400 and answer.json() == {"non_field_errors": ["Send a JSON object."]}
    answer = admin.post("/api/v1/hosts/", "not json", content_type="application/json")
    assert answer.status_code == 400
    assert (Operation.objects.count(), Host.objects.count()) == before


def test_a_session_needs_the_csrf_token(admin_user, vm):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.get("/api/v1/vms/").status_code == 200
    assert client.post(f"/api/v1/vms/{vm.pk}/actions/", {"action": "start"}, format="json").status_code == 403
    assert not Operation.objects.exists()


def test_grants_through_the_api(api_as, vm, test_host):
    admin = api_as("admin")
    operator = api_as("nobody")
    created = admin.post("/api/v1/grants/", {"user": operator.user.username, "host": test_host.pk, "vm": "api-vm",
                                             "role": "operator"}, format="json")
    assert created.status_code == 201 and created.json()["domain"] == vm.pk
    assert operator.get(f"/api/v1/vms/{vm.pk}/").status_code == 200
    assert admin.post("/api/v1/grants/", {"user": "nobody-at-all", "host": test_host.pk, "role": "viewer"},
                      format="json").status_code == 400
    assert admin.delete(f"/api/v1/grants/{created.json()['id']}/").status_code == 204
    assert operator.get(f"/api/v1/vms/{vm.pk}/").status_code == 404
    assert operator.get("/api/v1/grants/").status_code == 403


def test_the_schema_and_its_docs_are_served_without_any_cdn(api_as):
    admin = api_as("admin")
    schema = admin.get("/api/v1/schema/?format=json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert {"/api/v1/vms/{id}/actions/", "/api/v1/operations/{id}/", "/api/v1/grants/"} <= set(paths)
    docs = admin.get("/api/v1/docs/")
    assert docs.status_code == 200 and b"//cdn" not in docs.content and b"<script>" not in docs.content


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_start_through_the_api_runs_on_the_real_libvirtd(celery_worker, local_libvirt, guests, api_as):
    from hosts.services import host_register_local

    host, _ = host_register_local()
    guest = guests.define(LOCAL)
    domain = cached(host, guest)
    operator = api_as("operator", host=host)
    response = operator.post(f"/api/v1/vms/{domain.pk}/actions/", {"action": "start"}, format="json")
    assert response.status_code == 202

    def finished():
        return operator.get(response.json()["url"]).json()["state"] in ("succeeded", "failed")

    stack.wait_until(finished, timeout=60, message="the start to finish")
    assert operator.get(response.json()["url"]).json()["state"] == "succeeded"
    assert guest.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    stack.wait_until(lambda: operator.get(f"/api/v1/vms/{domain.pk}/").json()["state"] == "Running", timeout=10,
                     message="the VM's row to say Running")
    assert reverse("api:operation", args=[response.json()["operation"]]) == response.json()["url"]


def test_no_answer_holds_more_than_a_thousand_rows(api_as, test_host):
    Domain.objects.bulk_create(Domain(host=test_host, uuid=f"00000000-0000-0000-0000-{index:012d}", name=f"n{index}",
                                      synced_at=timezone.now()) for index in range(1005))
    page = api_as("admin").get("/api/v1/vms/?limit=100000").json()
    assert page["count"] == 1005 and len(page["results"]) == 1000 and page["next"]


def test_a_forms_own_refusal_comes_back_as_non_field_errors(api_as, test_host):
    from storage.models import StoragePool

    pool = StoragePool.objects.create(host=test_host, uuid="6695eb01-f6a4-8304-79aa-97f2502e1e01", name="off",
                                      pool_type="dir", active=False, available=2**30, synced_at=timezone.now())
    answer = api_as("admin").post(f"/api/v1/pools/{pool.pk}/volumes/", {"name": "a.img", "format": "raw",
                                                                          "capacity": 1}, format="json")
    assert answer.status_code == 400
    assert answer.json()["non_field_errors"] == ["The pool off is not active: start it first."]
