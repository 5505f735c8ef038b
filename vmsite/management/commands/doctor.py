"""`manage.py doctor`: the installation's self-check, one line per check (vmsite/doctor.py)."""
import ipaddress

from django.core.management.base import BaseCommand, CommandError

from vmsite.doctor import FAIL, OK, WARN, Probe, default_site_url, run_checks

RESOLVE_FORMAT = "--resolve takes NAME:ADDRESS, e.g. vmsite.example.org:192.0.2.10 or vmsite.example.org:[::1]"


class Command(BaseCommand):
    help = ("Check the installation: database, Redis, workers, beat, listeners, console proxy, the site's URL, "
            "HTTPS, the data folder, clocks, migrations. Exits non-zero on any problem, each with its fix.")
    requires_system_checks: list[str] = []  # it reports what the system checks would refuse to start with
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", help="the URL users open, e.g. https://vmsite.example.org "
                                          "(default: the first of CSRF_TRUSTED_ORIGINS, then SITE_ORIGINS)")
        parser.add_argument("--resolve", action="append", default=[], metavar="NAME:ADDRESS",
                            help="reach NAME at ADDRESS instead of looking it up, as curl's --resolve (a name "
                                 "DNS does not have yet); the certificate is still checked for NAME. Repeatable.")

    def handle(self, *args, url: str | None, resolve: list[str], **options) -> None:
        site_url = url or default_site_url()
        if url is None:
            self.stdout.write(f"Checking for {site_url or 'no URL'} (give --url to check another)")
        results = run_checks(Probe(site_url=site_url, resolve=dict(parse_resolve(value) for value in resolve)))
        style = {OK: self.style.SUCCESS, WARN: self.style.WARNING, FAIL: self.style.ERROR}
        for result in results:
            line = f"{style[result.level](f'{result.level:<4}')} {result.name}: {result.found}"
            if result.fix:
                line += f"\n     fix: {result.fix}"
            self.stdout.write(line)
        problems = [result for result in results if not result.ok]
        if problems:
            raise CommandError(f"{len(problems)} of {len(results)} checks found a problem.", returncode=1)
        self.stdout.write(f"All {len(results)} checks passed.")


def parse_resolve(value: str) -> tuple[str, str]:
    """NAME:ADDRESS (an IPv6 address bare or in brackets) as (name, address)."""
    name, _, address = value.partition(":")
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise CommandError(f"{RESOLVE_FORMAT} (not {value!r}).") from None
    if not name:
        raise CommandError(f"{RESOLVE_FORMAT} (not {value!r}).")
    return name.lower(), address
