import os
import sys
import time

from celery import Celery
from celery.signals import beat_init, celeryd_init, worker_ready
from celery.worker.control import inspect_command

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vmsite.settings")

# The celery program (workers, beat) makes its files private from the very start: beat opens its
# schedule file before any signal a handler could act on. The other processes that import this
# app (the web server, manage.py, the test suite) see to their own umask.
if os.path.basename(sys.argv[0]) == "celery" or sys.argv[0].endswith(os.path.join("celery", "__main__.py")):
    os.umask(0o077)

app = Celery("vmsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@celeryd_init.connect
@beat_init.connect
def _private(**kwargs) -> None:
    """Workers and beat make their files private and refuse a data folder others can read. Celery
    logs and swallows a handler's exceptions, so a refusal exits here."""
    from django.core.exceptions import ImproperlyConfigured

    from vmsite.private import start_private_process

    try:
        start_private_process()
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"vmsite cannot start: {exc}\n")
        raise SystemExit(1) from None


@worker_ready.connect
def _write_host_ssh_files(**_kwargs) -> None:
    """A worker may be the first process on this machine to connect to a host over SSH."""
    from hosts.connection import hosts_ssh_files_ensure

    hosts_ssh_files_ensure()


@inspect_command()
def vmsite_clock(state, **_kwargs) -> dict:
    """This worker's time and the queues it takes: `manage.py doctor` compares the time with its own."""
    consumer = state.consumer.task_consumer
    return {"time": time.time(), "queues": sorted(queue.name for queue in consumer.queues) if consumer else []}
