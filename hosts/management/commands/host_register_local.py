from django.core.management.base import BaseCommand

from hosts.services import host_register_local


class Command(BaseCommand):
    help = "Register this machine's libvirt (qemu:///system) as a host, once."

    def handle(self, *args, **options) -> None:
        host, created = host_register_local()
        verb = "Registered" if created else "Already registered:"
        self.stdout.write(f"{verb} host {host.name} ({host.uri})")
