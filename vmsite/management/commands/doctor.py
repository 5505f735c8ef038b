"""`manage.py doctor`: the installation's self-check, one line per check (vmsite/doctor.py)."""
from django.core.management.base import BaseCommand, CommandError

from vmsite.doctor import FAIL, OK, WARN, Probe, default_site_url, run_checks


class Command(BaseCommand):
    help = ("Check the installation: database, Redis, workers, beat, listeners, console proxy, the site's URL, "
            "HTTPS, the data folder, clocks, migrations. Exits non-zero on any problem, each with its fix.")
    requires_system_checks: list[str] = []  # it reports what the system checks would refuse to start with
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", help="the URL users open, e.g. https://vmsite.example.org "
                                          "(default: the first of CSRF_TRUSTED_ORIGINS, then SITE_ORIGINS)")

    def handle(self, *args, url: str | None, **options) -> None:
        site_url = url or default_site_url()
        if url is None:
            self.stdout.write(f"Checking for {site_url or 'no URL'} (give --url to check another)")
        results = run_checks(Probe(site_url=site_url))
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
