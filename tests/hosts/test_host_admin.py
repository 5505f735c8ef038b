"""The Django admin shows hosts but cannot set their connection: that is the host form's job."""
import pytest
from django.urls import reverse

from hosts.models import Host

pytestmark = pytest.mark.django_db


@pytest.mark.integration  # reaches a libvirtd or Redis
def test_it_ignores_an_address_posted_to_the_admin(admin_client):
    host = Host.objects.create(name="h", transport="tcp", address="127.0.0.5")
    response = admin_client.post(reverse("admin:hosts_host_change", args=[host.pk]), {
        "name": "h", "transport": "tcp", "address": "x?command=/bin/sh", "tls_dir": "/etc", "enabled": ""})
    assert response.status_code == 302
    host.refresh_from_db()
    assert (host.address, host.tls_dir, host.enabled) == ("127.0.0.5", "", False)
    assert admin_client.get(reverse("hosts:list")).status_code == 200


def test_it_adds_no_host_in_the_admin(admin_client):
    assert admin_client.get(reverse("admin:hosts_host_add")).status_code == 403
    assert admin_client.get(reverse("admin:hosts_host_changelist")).status_code == 200
