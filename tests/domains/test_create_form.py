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


def test_the_wizard_and_add_nic_offer_one_list_of_nic_models_from_the_hosts_capabilities(host):
    from django.utils import timezone

    from domains.forms_config import AttachNicForm, NicChangeForm
    from domains.models import Domain

    host.capabilities = {"arch": "x86_64"}
    host.save()
    domain = Domain.objects.create(host=host, uuid="6695eb01-f6a4-8304-79aa-97f2502e0001", name="nic-vm",
                                   synced_at=timezone.now())
    wizard = CreateDomainForm(host=host).fields["nic_model"].choices
    assert [model for model, _label in wizard] == ["virtio", "e1000e", "e1000", "rtl8139"]
    assert AttachNicForm(domain=domain).fields["model"].choices == wizard
    assert NicChangeForm(domain=domain).fields["model"].choices[1:] == wizard

    host.capabilities = {"arch": "s390x"}
    host.save()
    domain.refresh_from_db()
    form = CreateDomainForm({**VALID, "nic_kind": "network", "nic_model": "e1000e"}, host=host)
    assert not form.is_valid() and "e1000e is not one of the available choices" in form.errors["nic_model"][0]
    form = AttachNicForm({"model": "e1000e"}, domain=domain)
    assert not form.is_valid() and "e1000e is not one of the available choices" in form.errors["model"][0]
