import signal

from django.core.management.base import BaseCommand

from events.publish import publish_on_calling_thread
from listener.listener import Listener


class Command(BaseCommand):
    help = "Keep a live connection to every enabled host: offline detection, reconnect, reconcile."

    def handle(self, *args, **options) -> None:
        publish_on_calling_thread()
        listener = Listener()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: listener.stop())
        listener.run()
