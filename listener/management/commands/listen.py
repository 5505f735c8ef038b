import signal

from django.core.management.base import BaseCommand

from listener.listener import Listener


class Command(BaseCommand):
    help = "Keep a live connection to every enabled host: offline detection, reconnect, reconcile."

    def handle(self, *args, **options) -> None:
        listener = Listener()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: listener.stop())
        listener.run()
