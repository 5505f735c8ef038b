"""Writes on pools and volumes: queuing their operations, and the upload bookkeeping."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from hosts.models import Host
from operations.models import Operation
from operations.services import OperationBusy, operation_enqueue
from storage.choices import UploadState
from storage.models import StoragePool, Volume
from virt.xml.storage import PoolXML

POOL_ACTIONS = {"build": "Build", "start": "Start", "stop": "Stop", "autostart_on": "Autostart on",
                "autostart_off": "Autostart off", "refresh": "Refresh", "undefine": "Undefine", "delete": "Delete"}
VOLUME_ACTIONS = {"clone", "resize", "wipe", "delete", "checksum"}


# One rule for every kind of object: the name stays for the callers that catch it.
StorageBusy = OperationBusy


def _enqueue(*, kind: str, target, host: Host, user: AbstractBaseUser | None, arguments: dict[str, Any]) -> Operation:
    """One operation at a time per pool or volume; operations that create one on a host run side by side."""
    return operation_enqueue(kind=kind, target=target, host=host, user=user, arguments=arguments,
                             exclusive=not isinstance(target, Host))


@transaction.atomic
def pool_define_enqueue(*, host: Host, config: PoolXML, build: bool, start: bool, autostart: bool,
                        user: AbstractBaseUser | None) -> Operation:
    return _enqueue(kind="pool.define", target=host, host=host, user=user,
                    arguments={"xml": config.to_xml(), "build": build, "start": start, "autostart": autostart})


@transaction.atomic
def pool_action_enqueue(*, pool: StoragePool, action: str, user: AbstractBaseUser | None) -> Operation:
    if action not in POOL_ACTIONS:
        raise ValueError(f"Unknown pool action {action!r}.")
    return _enqueue(kind=f"pool.{action}", target=pool, host=pool.host, user=user, arguments={})


@transaction.atomic
def volume_create_enqueue(*, pool: StoragePool, arguments: dict, user: AbstractBaseUser | None) -> Operation:
    return _enqueue(kind="volume.create", target=pool, host=pool.host, user=user, arguments=arguments)


@transaction.atomic
def volume_action_enqueue(*, volume: Volume, action: str, user: AbstractBaseUser | None,
                          arguments: dict | None = None) -> Operation:
    if action not in VOLUME_ACTIONS:
        raise ValueError(f"Unknown volume action {action!r}.")
    return _enqueue(kind=f"volume.{action}", target=volume, host=volume.host, user=user, arguments=arguments or {})


def volume_mark_upload(*, volume_id: int, state: str, note: str = "", sha256: str | None = None) -> None:
    values: dict[str, Any] = {"upload_state": state, "upload_note": note[:500]}
    if sha256 is not None:
        values["sha256"] = sha256
    Volume.objects.filter(pk=volume_id).update(**values)


def volume_upload_started(*, volume: Volume) -> None:
    volume_mark_upload(volume_id=volume.pk, state=UploadState.UPLOADING, note="upload in progress", sha256="")


@transaction.atomic
def pool_discover_enqueue(*, host: Host, pool_type: str, source_host: str, user: AbstractBaseUser | None) -> Operation:
    """Ask the host what an NFS server exports or an iSCSI portal offers (libvirt's discovery)."""
    if pool_type not in ("netfs", "iscsi"):
        raise ValueError(f"No discovery for {pool_type!r} pools.")
    return _enqueue(kind="pool.discover", target=host, host=host, user=user,
                    arguments={"pool_type": pool_type, "source_host": source_host})
