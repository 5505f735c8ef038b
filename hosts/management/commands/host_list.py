from django.core.management.base import BaseCommand

from hosts.selectors import host_list


class Command(BaseCommand):
    help = "List registered hosts with their status and VM counts."

    def handle(self, *args, **options) -> None:
        self.stdout.write(f"{'NAME':20} {'STATUS':8} {'VMS':>5} {'ENABLED':7} URI")
        for host in host_list():
            self.stdout.write(f"{host.name:20} {host.status:8} {host.domain_count:>5} {str(host.enabled).lower():7} {host.uri}")
