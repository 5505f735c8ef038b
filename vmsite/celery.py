import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vmsite.settings")

app = Celery("vmsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _write_host_ssh_files(**_kwargs) -> None:
    """A worker may be the first process on this machine to connect to a host over SSH."""
    from hosts.connection import hosts_ssh_files_ensure

    hosts_ssh_files_ensure()
