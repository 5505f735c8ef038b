"""Periodic reconcile: every enabled host's inventory is re-read in bulk on a schedule."""
from __future__ import annotations

import logging

import redis
from celery import shared_task
from django.conf import settings

from hosts.choices import Transport
from hosts.models import Host
from inventory.reconcile import host_reconcile
from virt.errors import VirtError
from vmsite.redis_clients import redis_client

logger = logging.getLogger(__name__)


@shared_task(name="inventory.reconcile_all")
def reconcile_all_hosts() -> int:
    hosts = Host.objects.filter(enabled=True).exclude(transport=Transport.SSH, ssh_host_keys="")
    queued = 0
    for host_id in hosts.values_list("pk", flat=True):
        # One reconcile per host in flight: a slow host's backlog never grows.
        if _redis().set(f"vmsite:reconcile:{host_id}", 1, nx=True, ex=settings.RECONCILE_INTERVAL * 2):
            reconcile_host.apply_async((host_id,), queue=settings.OPERATIONS_QUEUE)
            queued += 1
    return queued


@shared_task(name="inventory.reconcile")
def reconcile_host(host_id: int) -> None:
    try:
        host = Host.objects.filter(pk=host_id, enabled=True).first()
        if host is not None:
            host_reconcile(host=host)
    except VirtError as exc:
        logger.info("reconcile of host %s failed: %s", host_id, exc)
    finally:
        _redis().delete(f"vmsite:reconcile:{host_id}")


def _redis() -> redis.Redis:
    return redis_client()
