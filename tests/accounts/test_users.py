"""Users and grants pages: bad input refused with a message, grants take effect at once, every
change audited."""
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from accounts.models import AuditAction, AuditEvent, Grant, Role
from domains.models import Domain
from hosts.models import Host

pytestmark = [pytest.mark.django_db]
GOOD_PASSWORD = "correct horse battery staple"


@pytest.fixture
def host():
    return Host.objects.create(name="granted-host", transport="test", address="default")


@pytest.fixture
def vm(host):
    return Domain.objects.create(host=host, uuid="3f1d2c4b-5a69-4788-9abc-def012345678", name="granted-vm",
                                 synced_at=timezone.now())


def add_user(admin_client, **data):
    return admin_client.post("/users/add/", {"username": "erin", "password": GOOD_PASSWORD, **data})


@pytest.mark.parametrize("data, message", [
    ({"username": "erin smith"}, "Enter a valid username"),
    ({"username": "<script>"}, "Enter a valid username"),
    ({"username": "x" * 151}, "at most 150 characters"),
    ({"password": "123"}, "This password is too short"),
    ({"password": "password123"}, "This password is too common"),
    ({"username": ""}, "This field is required"),
])
def test_adding_a_user_refuses_bad_input_with_a_message(admin_client, data, message):
    response = add_user(admin_client, **data)
    assert response.status_code == 400 and message in response.content.decode()
    assert not get_user_model().objects.filter(username__in=["erin", data.get("username", "")]).exists()


def test_a_user_name_already_taken_in_any_case_is_refused(admin_client):
    assert add_user(admin_client).status_code == 302
    response = add_user(admin_client, username="ERIN")
    assert response.status_code == 400 and "There is already a user called ERIN." in response.content.decode()


def test_grants_on_a_host_and_on_a_vm_take_effect_at_once(admin_client, host, vm):
    add_user(admin_client)
    erin = get_user_model().objects.get(username="erin")
    client = Client()
    client.force_login(erin)
    assert client.get(f"/vms/{vm.pk}/").status_code == 404  # nothing granted: not even there

    assert admin_client.post(f"/users/{erin.pk}/grants/add/", {"host": host.pk, "vm": "granted-vm",
                                                               "role": Role.VIEWER}).status_code == 302
    assert client.get(f"/vms/{vm.pk}/").status_code == 200
    assert client.post(f"/vms/{vm.pk}/start/").status_code == 403  # a viewer
    assert client.get(f"/hosts/{host.pk}/").status_code == 404  # a VM grant shows the VM, not its host

    admin_client.post(f"/users/{erin.pk}/grants/add/", {"host": host.pk, "vm": str(vm.uuid), "role": Role.OPERATOR})
    assert Grant.objects.get(user=erin, domain=vm).role == Role.OPERATOR  # changed, not doubled
    admin_client.post(f"/users/{erin.pk}/grants/add/", {"host": host.pk, "vm": "", "role": Role.VIEWER})
    assert client.get(f"/hosts/{host.pk}/").status_code == 200

    grant = Grant.objects.get(user=erin, host=host)
    admin_client.post(f"/users/{erin.pk}/grants/{grant.pk}/remove/")
    assert client.get(f"/hosts/{host.pk}/").status_code == 404
    actions = list(AuditEvent.objects.filter(action__in=[AuditAction.GRANT_ADDED, AuditAction.GRANT_REMOVED])
                   .values_list("action", flat=True))
    assert actions.count(AuditAction.GRANT_ADDED) == 3 and actions.count(AuditAction.GRANT_REMOVED) == 1


def test_a_grant_on_a_vm_that_is_not_on_the_host_is_refused(admin_client, host, vm):
    add_user(admin_client)
    erin = get_user_model().objects.get(username="erin")
    response = admin_client.post(f"/users/{erin.pk}/grants/add/", {"host": host.pk, "vm": "no-such-vm",
                                                                   "role": Role.VIEWER})
    assert response.status_code == 400 and "No VM called &#x27;no-such-vm&#x27; on granted-host." in response.content.decode()
    assert admin_client.post(f"/users/{erin.pk}/grants/add/", {"host": 999999, "role": "viewer"}).status_code == 400
    assert admin_client.post(f"/users/{erin.pk}/grants/add/", {"host": host.pk, "role": "owner"}).status_code == 400
    assert not Grant.objects.filter(user=erin).exists()


def test_an_administrator_cannot_disable_or_demote_themselves(admin_client, admin_user):
    response = admin_client.post(f"/users/{admin_user.pk}/update/", {"active": "on"})
    assert response.status_code == 400 and "cannot disable yourself" in response.content.decode()
    admin_user.refresh_from_db()
    assert admin_user.is_superuser and admin_user.is_active


def test_disabling_a_user_and_setting_a_password(admin_client):
    add_user(admin_client)
    erin = get_user_model().objects.get(username="erin")
    client = Client()
    client.force_login(erin)
    assert admin_client.post(f"/users/{erin.pk}/password/", {"password": "short"}).status_code == 400
    assert admin_client.post(f"/users/{erin.pk}/password/", {"password": GOOD_PASSWORD + "!"}).status_code == 302
    assert client.get("/vms/").status_code == 302  # her session ended with the old password
    admin_client.post(f"/users/{erin.pk}/update/", {})
    erin.refresh_from_db()
    assert not erin.is_active
    assert AuditEvent.objects.filter(action=AuditAction.USER_CHANGED, target="erin", detail="disabled").exists()
