"""What every page leans on: the icon, error pages in the site's layout, and a way back from the API docs."""
import pytest
from django.contrib.staticfiles import finders
from django.test import RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

pytestmark = pytest.mark.django_db


def test_it_serves_a_real_favicon_to_anyone(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/x-icon"
    body = b"".join(response.streaming_content)
    assert body[:4] == b"\x00\x00\x01\x00" and b"PNG" in body  # an ICO holding a PNG
    assert "max-age" in response["Cache-Control"]


def test_every_page_names_its_icon(admin_client):
    page = admin_client.get(reverse("dashboard")).content.decode()
    for name in ("vmsite/favicon.svg", "vmsite/favicon.ico"):
        assert f'href="/static/{name}"' in page and finders.find(name)


def test_a_missing_page_is_a_404_in_the_sites_layout_with_a_way_back(admin_client):
    for url in ("/no-such-page/", reverse("domains:detail", args=[999999])):
        response = admin_client.get(url)
        assert response.status_code == 404
        page = response.content.decode()
        assert "Nothing here" in page and 'href="/" id="error-home"' in page and 'id="live-indicator"' in page
        assert "Resolver404" not in page


def test_a_refusal_is_a_403_that_says_why(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("plain", password="a long enough password"))
    response = client.get(reverse("users:list"))
    assert response.status_code == 403
    page = response.content.decode()
    assert "Not allowed" in page and "Administrators only." in page and 'id="error-home"' in page


def test_a_server_error_page_renders_without_a_database_or_context():
    response = server_error(RequestFactory().get("/"))
    page = response.content.decode()
    assert response.status_code == 500 and "Something went wrong" in page and 'href="/"' in page


def test_the_api_docs_lead_back_to_the_site(admin_client):
    page = admin_client.get(reverse("api:docs")).content.decode()
    assert 'id="docs-nav"' in page and 'href="/" id="docs-home"' in page and 'id="swagger-ui"' in page
