"""The network.create handler stores the network it defined, and its operation's page links to it."""
from __future__ import annotations

import pytest
from django.urls import reverse

from networking.models import VirtualNetwork
from networking.services import network_create_enqueue
from operations.registry import handler_for

pytestmark = pytest.mark.django_db


def test_the_created_networks_page_is_the_operations_result(test_host):
    arguments = {"name": "made-here", "mode": "route", "ipv4": {"gateway": "10.251.46.1", "prefix": 24}}
    operation = network_create_enqueue(host=test_host, user=None, arguments=arguments)
    assert operation.result_url == ""  # nothing to open until the network exists
    handler_for("network.create")(operation, lambda progress, message="": None)
    made = VirtualNetwork.objects.get(host=test_host, name="made-here")
    operation.refresh_from_db()
    assert (operation.result_url, operation.result_label) == (reverse("networking:detail", args=[made.pk]),
                                                              "the network made-here")
