import os
import stat
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.stack import ROOT
from vmsite import env


def start_django(tmp_path, **variables: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "DEBUG"}}
    environment.update(DJANGO_SETTINGS_MODULE="vmsite.settings", VMSITE_DATA_DIR=str(tmp_path), **variables)
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=60)


def test_it_refuses_a_malformed_database_url_naming_the_variable(tmp_path):
    result = start_django(tmp_path, DATABASE_URL="mysql//nonsense")
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def test_it_refuses_debug_maybe_naming_the_variable(tmp_path):
    result = start_django(tmp_path, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_it_starts_with_no_environment_and_generates_a_private_secret_key(tmp_path):
    result = start_django(tmp_path)
    assert result.returncode == 0, result.stderr
    key_file = tmp_path / "secret_key"
    assert len(key_file.read_text().strip()) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert start_django(tmp_path).returncode == 0
    assert key_file.read_text() == key_file.read_text()


@pytest.mark.parametrize("url", ["", "sqlite://", "postgres://host:99999/db", "postgres://host/", "http://x/y", "nonsense"])
def test_it_rejects_bad_database_urls(url):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env.parse_database_url("DATABASE_URL", url)


def test_only_the_web_process_opens_a_database_connection_per_request(tmp_path):
    """Django's advice for ASGI: no persistent connections there (each request runs on a thread of
    its own); the worker's and the listener's threads keep theirs for a minute."""
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_CONN_MAX_AGE"}
    environment.update(DJANGO_SETTINGS_MODULE="vmsite.settings", VMSITE_DATA_DIR=str(tmp_path),
                       DATABASE_URL="postgres://vmsite@127.0.0.1:5432/vmsite")
    ages = {}
    for process, setup in (("web", "import vmsite.asgi"), ("other", "import django; django.setup()")):
        code = f"{setup}; from django.conf import settings; print(settings.DATABASES['default']['CONN_MAX_AGE'])"
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        ages[process] = int(result.stdout.split()[-1])
    assert ages == {"web": 0, "other": 60}


def test_it_reads_postgres_and_sqlite_urls():
    postgres = env.parse_database_url("DATABASE_URL", "postgres://vm%40site:pa%3Ass@db.example:5433/vmsite")
    assert postgres["ENGINE"] == "django.db.backends.postgresql"
    assert (postgres["USER"], postgres["PASSWORD"], postgres["HOST"], postgres["PORT"], postgres["NAME"]) == (
        "vm@site", "pa:ss", "db.example", "5433", "vmsite")
    sqlite = env.parse_database_url("DATABASE_URL", "sqlite:////var/lib/vmsite/db.sqlite3")
    assert sqlite["NAME"] == "/var/lib/vmsite/db.sqlite3"


def test_processes_find_their_way_back_to_a_service_that_returns():
    """A PostgreSQL connection broken by a restart is dropped and opened again, not reused; a worker
    retries its broker forever (Celery's default exits after 100 tries, some 45 minutes)."""
    from vmsite.celery import app

    postgres = env.parse_database_url("DATABASE_URL", "postgres://vmsite@db.example/vmsite")
    assert postgres["CONN_HEALTH_CHECKS"] is True
    assert app.conf.broker_connection_retry is True and app.conf.broker_connection_max_retries is None


def test_it_reads_typed_values_and_names_bad_ones(monkeypatch):
    monkeypatch.setenv("SOME_BOOL", "Yes")
    assert env.env_bool("SOME_BOOL", False) is True
    monkeypatch.setenv("SOME_INT", "12x")
    with pytest.raises(ImproperlyConfigured, match="SOME_INT='12x' is not an integer"):
        env.env_int("SOME_INT", 1)
    monkeypatch.setenv("SOME_INT", "0")
    with pytest.raises(ImproperlyConfigured, match="SOME_INT=0 is below the minimum of 1"):
        env.env_int("SOME_INT", 5, minimum=1)
    monkeypatch.setenv("SOME_LIST", "a, b,,c")
    assert env.env_list("SOME_LIST", []) == ["a", "b", "c"]


def test_it_reads_secrets_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("MY_SECRET_FILE", str(secret))
    assert env.env_str("MY_SECRET", "default") == "from-a-file"
    monkeypatch.setenv("MY_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="MY_SECRET_FILE"):
        env.env_str("MY_SECRET", "default")


def test_it_reads_trusted_proxies_and_names_a_bad_one(monkeypatch):
    monkeypatch.setenv("SOME_PROXIES", "10.0.0.5, 192.0.2.0/24,2001:db8::/32")
    assert [str(network) for network in env.env_networks("SOME_PROXIES", [])] == [
        "10.0.0.5/32", "192.0.2.0/24", "2001:db8::/32"]
    monkeypatch.setenv("SOME_PROXIES", "10.0.0.5, proxy.example")
    with pytest.raises(ImproperlyConfigured, match="SOME_PROXIES: 'proxy.example' is not an IP address or network"):
        env.env_networks("SOME_PROXIES", [])
