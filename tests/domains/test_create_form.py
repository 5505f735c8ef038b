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


def test_it_defaults_to_a_migratable_cpu_when_the_user_may_move_the_vm_to_another_host(host, django_user_model):
    from accounts.models import Grant, Role

    host.capabilities = {"kvm": True, "cpu_modes": ["host-passthrough", "host-model", "custom"]}
    host.save()
    operator = django_user_model.objects.create_user("op", password="x")
    Grant.objects.create(user=operator, host=host, role=Role.OPERATOR)
    form = CreateDomainForm(host=host, user=operator)
    assert form["cpu_mode"].initial == "host-passthrough"
    assert "no other host you may migrate this VM to" in form.fields["cpu_mode"].help_text

    peer = Host.objects.create(name="peer", transport="tcp", address="127.0.0.250")
    assert CreateDomainForm(host=host, user=operator)["cpu_mode"].initial == "host-passthrough"  # not theirs
    Grant.objects.create(user=operator, host=peer, role=Role.VIEWER)  # seeing a host is not moving VMs to it
    assert CreateDomainForm(host=host, user=operator)["cpu_mode"].initial == "host-passthrough"

    Grant.objects.filter(user=operator, host=peer).update(role=Role.OPERATOR)
    form = CreateDomainForm(host=host, user=operator)
    assert form["cpu_mode"].initial == "host-model"
    assert "you may migrate VMs to peer" in form.fields["cpu_mode"].help_text
    peer.enabled = False
    peer.save()
    assert CreateDomainForm(host=host, user=operator)["cpu_mode"].initial == "host-passthrough"
