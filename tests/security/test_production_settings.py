"""Production settings pass Django's deployment checks; every answer carries the security headers."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def deploy_check(tmp_path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "vmsite.settings", "VMSITE_DATA_DIR": str(tmp_path),
                   **env}
    for name in ("DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE", "DATABASE_URL", "REDIS_URL"):  # the suite's own
        environment.pop(name, None)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=120)


def test_https_production_settings_pass_check_deploy_at_warning_level(tmp_path):
    result = deploy_check(tmp_path, HTTPS="true", ALLOWED_HOSTS="vmsite.example.org")
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_https_check_deploy_says_what_is_missing(tmp_path):
    result = deploy_check(tmp_path)
    assert result.returncode != 0 and "SECURE_HSTS_SECONDS" in result.stderr + result.stdout


@pytest.mark.django_db
def test_every_answer_has_the_security_headers(client):
    response = client.get("/login/")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy and "unsafe-eval" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
