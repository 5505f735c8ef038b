"""The serial console page in Chromium shows a real guest's shell (tests/realguest.py): its
prompt, and the answer of a command typed into the page, which only a running shell can give."""
import pytest
from playwright.sync_api import expect

from tests.consoles.conftest import cached
from tests.consoles.test_console_pages import log_in

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]
LOCAL = "qemu:///system"


def test_the_serial_console_page_shows_a_real_guests_shell(page, asgi_server, local_host, guests, alice):
    guest = guests.real(LOCAL)
    guest.shell.close()  # the page takes the console over; the test's own reader steps aside
    domain = cached(local_host, guest.domain)
    log_in(page, asgi_server, alice)
    page.goto(f"{asgi_server}/vms/{domain.pk}/serial/")
    expect(page.locator("#console-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    screen = page.locator("#terminal")
    screen.click()
    page.keyboard.press("Enter")
    expect(screen).to_contain_text("guest# ", timeout=30_000)
    page.keyboard.type("echo answer-$((6*7))")
    page.keyboard.press("Enter")
    expect(screen).to_contain_text("answer-42", timeout=30_000)  # typed as $((6*7)): the guest's shell computed it
