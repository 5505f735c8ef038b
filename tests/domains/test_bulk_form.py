"""The bulk action form goes back only to a VM page, whatever 'next' says, valid or not."""
import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("next_page", [" ", "hosts:list", "https://evil.example/", "//evil.example/",
                                       "/vms/\\evil.example", "/vms/\r\nSet-Cookie: a=b"])
def test_it_goes_back_to_the_vm_list_when_next_is_not_a_vm_page(admin_client, next_page):
    for post in ({"action": "start", "domains": [], "next": next_page},
                 {"action": "start", "domains": ["999"], "next": next_page}):
        response = admin_client.post(reverse("domains:bulk"), post)
        assert response.status_code == 302
        assert response.url == reverse("domains:list")


def test_it_goes_back_to_the_vm_page_it_was_sent_from(admin_client):
    response = admin_client.post(reverse("domains:bulk"), {"action": "start", "domains": [], "next": "/vms/?q=web"})
    assert response.url == "/vms/?q=web"


@pytest.mark.parametrize("domain_id", ["9" * 30, "-1", "1.5", "١"])
def test_it_refuses_vm_ids_that_are_not_ids(admin_client, domain_id):
    response = admin_client.post(reverse("domains:bulk"), {"action": "start", "domains": [domain_id]})
    assert response.status_code == 302
    assert [str(message) for message in get_messages(response.wsgi_request)] == [f"“{domain_id}” is not a valid value."]
