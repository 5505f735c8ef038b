"""Writes on networks: queuing their operations, one at a time per network."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from hosts.models import Host
from networking.models import VirtualNetwork
from operations.models import Operation
from operations.services import OperationBusy, operation_enqueue

User = AbstractBaseUser | None
# What a user can do to an existing network, by operation kind suffix.
NETWORK_ACTIONS = {"start": "Start", "stop": "Stop", "autostart_on": "Autostart on", "autostart_off": "Autostart off",
                   "delete": "Delete", "lease_add": "Add static lease", "lease_remove": "Remove static lease",
                   "dns_add": "Add DNS entry", "dns_remove": "Remove DNS entry", "refresh": "Refresh",
                   "edit": "Edit"}


# One rule for every kind of object: the name stays for the callers that catch it.
NetworkBusy = OperationBusy


def network_create_enqueue(*, host: Host, user: User, arguments: dict[str, Any]) -> Operation:
    return operation_enqueue(kind="network.create", target=host, host=host, user=user, arguments=arguments)


@transaction.atomic
def network_action_enqueue(*, network: VirtualNetwork, action: str, user: User,
                           arguments: dict[str, Any] | None = None) -> Operation:
    if action not in NETWORK_ACTIONS:
        raise ValueError(f"Unknown network action {action!r}.")
    link = {} if action == "delete" else network.result_link  # a deleted network's page is its tombstone
    return operation_enqueue(kind=f"network.{action}", target=network, host=network.host, user=user,
                             arguments=arguments or {}, exclusive=True, **link)
