"""The suite hashes passwords cheaply and lets PostgreSQL commit without waiting for the disk; the settings a
deployment runs on keep a slow, salted hash and durable commits."""
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password

ROOT = Path(__file__).resolve().parents[2]


def test_the_suite_uses_the_cheap_hasher_and_it_still_checks_passwords():
    assert settings.PASSWORD_HASHERS == ["django.contrib.auth.hashers.MD5PasswordHasher"]
    hashed = make_password("correct horse")
    assert check_password("correct horse", hashed) and not check_password("wrong horse", hashed)


def test_production_settings_hash_with_pbkdf2(tmp_path):
    code = ("import django; django.setup(); from django.contrib.auth.hashers import get_hasher, make_password;"
            "print(get_hasher().algorithm, make_password('x').split('$')[0])")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "vmsite.settings",
                                 "VMSITE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pbkdf2_sha256", "pbkdf2_sha256"]


def test_only_the_suites_postgresql_commits_without_waiting_for_the_disk(tmp_path):
    code = ("import django; django.setup(); from django.conf import settings;"
            "print(settings.DATABASES['default'].get('OPTIONS', {}).get('options', 'waits'))")

    def commit_options(settings_module: str) -> str:
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                                env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": settings_module,
                                     "VMSITE_DATA_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:6379/8",
                                     "DATABASE_URL": "postgres://vmsite@127.0.0.1:5432/vmsite"})
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert commit_options("vmsite.settings") == "waits"
    assert commit_options("vmsite.settings_test") == "-c synchronous_commit=off"
