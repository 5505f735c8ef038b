"""Row 9 of issue 14: a user never learns the name or the state of anything they may not see, not
from a page, a form's error, a message or the API: the bulk form, the migrate page and its errors,
a taken name."""
from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Grant, Role
from domains.choices import DomainState
from domains.models import Domain
from hosts.models import Host
from operations.models import Operation
from tests.api.conftest import token_client

pytestmark = [pytest.mark.django_db]
SECRET = "secret-"  # every name the user may not see starts so


@pytest.fixture
def world():
    tag = uuid.uuid4().hex[:6]
    now = timezone.now()
    mine = Host.objects.create(name=f"mine-{tag}", transport="tcp", address="127.0.0.240", status="online")
    operated = Host.objects.create(name=f"operated-{tag}", transport="tcp", address="127.0.0.241", status="online")
    hidden = Host.objects.create(name=f"{SECRET}host-{tag}", transport="tcp", address="127.0.0.242", status="error",
                                 status_reason=f"{SECRET}reason: the host's disk is failing")
    vm = Domain.objects.create(host=mine, uuid=uuid.uuid4(), name=f"vm-{tag}", state=DomainState.RUNNING,
                               synced_at=now)
    watched = Domain.objects.create(host=mine, uuid=uuid.uuid4(), name=f"watched-{tag}", state=DomainState.SHUTOFF,
                                    synced_at=now)
    neighbour = Domain.objects.create(host=mine, uuid=uuid.uuid4(), name=f"{SECRET}vm-{tag}",
                                      state=DomainState.SHUTOFF, synced_at=now)
    elsewhere = Domain.objects.create(host=hidden, uuid=uuid.uuid4(), name=f"{SECRET}far-{tag}",
                                      state=DomainState.SHUTOFF, synced_at=now)
    user = get_user_model().objects.create_user(f"tenant-{tag}", password="x")
    Grant.objects.create(user=user, domain=vm, role=Role.OPERATOR)
    Grant.objects.create(user=user, domain=watched, role=Role.VIEWER)
    Grant.objects.create(user=user, host=operated, role=Role.OPERATOR)
    client = Client()
    client.force_login(user)
    return {"vm": vm, "watched": watched, "neighbour": neighbour, "elsewhere": elsewhere, "hidden": hidden,
            "operated": operated, "user": user, "client": client}


def told(response) -> str:
    return " ".join(str(message) for message in get_messages(response.wsgi_request))


def test_the_bulk_form_never_names_a_vm_the_user_may_not_see(world):
    chosen = [world[name].pk for name in ("vm", "watched", "neighbour", "elsewhere")]
    # Force off: an action the running VM's state allows (a start of it is refused, and would be named).
    response = world["client"].post(reverse("domains:bulk"), {"action": "force_off", "domains": chosen})
    said = told(response)
    assert SECRET not in said, said
    assert "Force off: 1 operation(s) queued." in said
    assert f"Skipped {world['watched'].name}: your role does not allow it" in said  # seen, not operated: named
    assert "Skipped 2 VM(s) that do not exist or that you may not see." in said
    missing = world["client"].post(reverse("domains:bulk"), {"action": "start", "domains": [99_999_999]})
    assert "Skipped 1 VM(s) that do not exist or that you may not see." in told(missing)  # the same words
    assert Operation.objects.filter(target_id=world["vm"].pk).count() == 1


@pytest.mark.usefixtures("redis_ready")  # the migrate page asks whether each host is watched (a Redis lease)
def test_the_migrate_page_offers_and_describes_only_hosts_the_user_operates(world):
    url = reverse("domains:migrate", args=[world["vm"].pk])
    page = world["client"].get(url).content.decode()
    assert world["operated"].name in page and SECRET not in page
    response = world["client"].post(url, {"destination": world["hidden"].pk, "live": "on",
                                          "persist_destination": "on", "undefine_source": "on"})
    assert response.status_code == 400 and SECRET not in response.content.decode()
    assert response.context["form"].errors["destination"] == [
        "Choose one of the hosts offered: enabled hosts you operate."]
    api = token_client(world["user"]).post(f"/api/v1/vms/{world['vm'].pk}/migrate/",
                                           {"destination": world["hidden"].pk, "live": True}, format="json")
    assert api.status_code == 400 and SECRET not in api.content.decode()
    assert not Operation.objects.exists()


def test_a_taken_name_is_said_without_naming_the_host_or_the_vm(world):
    world["vm"].state = DomainState.SHUTOFF
    world["vm"].save()
    response = world["client"].post(reverse("domains:rename", args=[world["vm"].pk]),
                                    {"name": world["neighbour"].name})
    assert response.status_code == 400
    assert response.context["form"].errors["name"] == [
        f"The name {world['neighbour'].name!r} is taken on this VM's host: choose another."]
    assert world["vm"].host.name not in str(response.context["form"].errors)


def test_pages_link_a_host_only_for_users_who_may_open_its_page(world, django_user_model):
    """A user granted one VM sees its host's name, but no link to the host's page (which answers them
    404); a host's operator and an administrator get the link, on the same pages."""
    mine, operated = world["vm"].host, world["operated"]
    theirs = Domain.objects.create(host=operated, uuid=uuid.uuid4(), name=f"theirs-{world['vm'].name}",
                                   state=DomainState.SHUTOFF, synced_at=timezone.now())
    operation = Operation.objects.create(kind="domain.start", target_type="domain", target_id=world["vm"].pk,
                                         target_label=world["vm"].name, host=mine, user=world["user"])
    link = lambda host: f'href="{reverse("hosts:detail", args=[host.pk])}"'  # noqa: E731
    client = world["client"]
    assert client.get(reverse("hosts:detail", args=[mine.pk])).status_code == 404
    pages = [reverse("domains:list"), reverse("domains:detail", args=[world["vm"].pk]),
             reverse("operations:detail", args=[operation.pk])]
    for url in pages:
        page = client.get(url).content.decode()
        assert mine.name in page, url
        assert link(mine) not in page, url
    assert link(operated) in client.get(reverse("domains:list")).content.decode()
    assert link(operated) in client.get(reverse("domains:detail", args=[theirs.pk])).content.decode()
    admin = Client()
    admin.force_login(django_user_model.objects.create_superuser(f"root-{mine.name}", password="x"))
    for url in pages:
        assert link(mine) in admin.get(url).content.decode(), url
