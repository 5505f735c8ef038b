"""Simulated users for bench/production.py (run by locust, in its own virtualenv): each takes a
logged-in session from LOCUST_SESSIONS (one sessionid a line) and browses the pages an operator
opens, a page every 1 to 4 seconds. The site's name resolves to LOCUST_ADDRESS (nginx's) here."""
import os
import random
import socket

from locust import HttpUser, between, task

SERVER_NAME, ADDRESS = os.environ["LOCUST_SERVER_NAME"], os.environ["LOCUST_ADDRESS"]
SESSIONS = open(os.environ["LOCUST_SESSIONS"]).read().split()
VM_PAGES = open(os.environ["LOCUST_VM_PAGES"]).read().split()
_getaddrinfo = socket.getaddrinfo


def _resolve_site(host, *args, **kwargs):
    return _getaddrinfo(ADDRESS if host == SERVER_NAME else host, *args, **kwargs)


socket.getaddrinfo = _resolve_site  # gevent's, once locust has patched the socket module


class Operator(HttpUser):
    wait_time = between(1, 4)

    def on_start(self) -> None:
        self.client.verify = os.environ["LOCUST_CA"]
        self.client.cookies.set("sessionid", random.choice(SESSIONS), domain=SERVER_NAME)

    @task(4)
    def dashboard(self) -> None:
        self.client.get("/", name="dashboard")

    @task(4)
    def vm_list(self) -> None:
        self.client.get("/vms/", name="vm list")

    @task(3)
    def vm_page(self) -> None:
        self.client.get(random.choice(VM_PAGES), name="vm page")

    @task(2)
    def hosts(self) -> None:
        self.client.get("/hosts/", name="hosts")

    @task(2)
    def storage(self) -> None:
        self.client.get("/storage/", name="storage")

    @task(1)
    def operations(self) -> None:
        self.client.get("/operations/", name="operations")

    @task(1)
    def networks(self) -> None:
        self.client.get("/networks/", name="networks")
