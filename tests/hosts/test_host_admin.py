"""What Django's admin offered for hosts is on vmsite's own pages (the admin is gone): an
administrator enables and disables a host there, audited; nobody edits a host's connection
outside the host form."""
import pytest
from django.urls import reverse

from accounts.models import AuditAction, AuditEvent
from hosts.models import Host

pytestmark = pytest.mark.django_db


@pytest.mark.integration  # reaches Redis (the change is announced)
def test_it_disables_and_enables_a_host_on_its_page_audited(admin_client):
    host = Host.objects.create(name="h", transport="tcp", address="127.0.0.5")
    assert admin_client.post(reverse("hosts:enable", args=[host.pk]), {"enabled": "0"}).status_code == 302
    host.refresh_from_db()
    assert host.enabled is False
    admin_client.post(reverse("hosts:enable", args=[host.pk]), {"enabled": "1"})
    host.refresh_from_db()
    assert host.enabled is True
    details = list(AuditEvent.objects.filter(action=AuditAction.HOST_CHANGED, target="h")
                   .order_by("pk").values_list("detail", flat=True))
    assert details == ["disabled", "enabled"]


def test_it_has_no_admin_form_that_takes_an_address(admin_client):
    host = Host.objects.create(name="h", transport="tcp", address="127.0.0.5")
    response = admin_client.post(f"/admin/hosts/host/{host.pk}/change/", {
        "name": "h", "transport": "tcp", "address": "x?command=/bin/sh", "enabled": ""})
    assert response.status_code == 404
    host.refresh_from_db()
    assert (host.address, host.enabled) == ("127.0.0.5", True)
