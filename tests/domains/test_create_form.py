"""The new-VM form alone (no libvirt): text that the domain XML cannot hold is refused here."""
import pytest

from domains.forms_create import CreateDomainForm
from hosts.models import Host

pytestmark = pytest.mark.django_db

VALID = {"name": "new-vm", "vcpus": "1", "max_vcpus": "1", "memory_mib": "64", "max_memory_mib": "64",
         "machine": "pc", "firmware": "bios", "cpu_mode": "host-model", "disk_source": "none", "disk_format": "qcow2",
         "disk_bus": "virtio", "disk_cache": "default", "nic_kind": "none", "nic_model": "virtio",
         "boot_first": "hd"}


@pytest.fixture
def host() -> Host:
    return Host.objects.create(name="form-host", transport="test", address="default")


def test_it_accepts_the_plain_form(host):
    form = CreateDomainForm({**VALID, "title": "Web", "description": "Serves\nthe web."}, host=host)
    assert form.is_valid(), form.errors


@pytest.mark.parametrize(("field", "text"), [("title", "a\x01b"), ("description", "line\x1b[31m"),
                                             ("description", "\ufffe")])
def test_it_refuses_text_the_domain_xml_cannot_hold(host, field, text):
    form = CreateDomainForm({**VALID, field: text}, host=host)
    assert not form.is_valid()
    assert "which XML 1.0 cannot represent" in form.errors[field][0]
