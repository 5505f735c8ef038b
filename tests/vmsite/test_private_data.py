"""The data folder is private (issue 14, row 8): every process vmsite starts makes its files with
umask 077 and refuses to start on a folder other users can read, saying how to mend it; `make
run`'s set-up makes it private. Run with the real settings in a folder of each test's own."""
from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests import stack


def real_env(data_dir: Path, **extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "DEBUG"}}
    environment.update(DJANGO_SETTINGS_MODULE="vmsite.settings", VMSITE_DATA_DIR=str(data_dir),
                       REDIS_URL=settings.REDIS_URL, PYTHONUNBUFFERED="1", **extra)
    return environment


def manage(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=stack.ROOT, env=real_env(data_dir),
                          capture_output=True, text=True, timeout=120)


def exposed_install(tmp_path: Path) -> Path:
    """A data folder as older installs left it: 0755, a database 0644, a private key 0600."""
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o755)
    (folder / "vmsite.sqlite3").write_bytes(b"")
    (folder / "vmsite.sqlite3").chmod(0o644)
    (folder / "ssh").mkdir()
    (folder / "ssh").chmod(0o755)
    key = folder / "ssh" / "id_ed25519"
    key.write_text("key")
    key.chmod(0o600)
    return folder


def modes(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode) for path in [folder, *folder.rglob("*")]}


def umask_of(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:"))


def test_it_refuses_to_start_on_a_data_folder_others_can_read_and_says_how_to_mend_it(tmp_path):
    folder = exposed_install(tmp_path)
    result = manage(folder, "check")
    assert result.returncode != 0
    assert f"{folder} is mode 0755, open to other users (want 0700)" in result.stderr
    assert f"{folder / 'vmsite.sqlite3'} is mode 0644, open to other users (want 0600)" in result.stderr
    assert "manage.py private_data_dir" in result.stderr


def test_it_mends_an_existing_install_and_makes_a_new_one_private(tmp_path):
    folder = exposed_install(tmp_path)
    mended = manage(folder, "private_data_dir")
    assert mended.returncode == 0, mended.stderr
    assert all(mode & 0o077 == 0 for mode in modes(folder).values()), modes(folder)
    assert modes(folder)["."] == 0o700 and modes(folder)["vmsite.sqlite3"] == 0o600
    assert manage(folder, "check").returncode == 0

    fresh = tmp_path / "fresh"
    assert manage(fresh, "private_data_dir").returncode == 0
    assert manage(fresh, "migrate", "-v0").returncode == 0
    assert manage(fresh, "collectstatic", "--noinput", "-v0").returncode == 0
    made = modes(fresh)
    assert made["."] == 0o700 and made["vmsite.sqlite3"] == 0o600 and made["secret_box_key"] == 0o600
    assert not {path: oct(mode) for path, mode in made.items() if mode & 0o077}
    assert manage(fresh, "check").returncode == 0


def test_it_gives_manage_py_commands_umask_077(tmp_path):
    folder = tmp_path / "data"
    result = manage(folder, "shell", "-v0", "-c", "import os; print(oct(os.umask(0)))")
    assert result.stdout.strip().splitlines()[-1] == "0o77", result.stderr


def command(process: str, data_dir: Path) -> tuple[list[str], object]:
    """The process as the Procfile starts it, and how to tell it has started."""
    celery = str(stack.VENV_BIN / "celery")
    if process == "web":
        port = stack.free_port()
        return (stack.asgi_argv(port),
                lambda server: stack.port_open("127.0.0.1", port))
    if process == "celery":
        queue = f"private-test-{secrets.token_hex(4)}"  # takes no task of anyone else's
        return ([celery, "-A", "vmsite", "worker", "--loglevel", "INFO", "--concurrency", "1", "--queues", queue,
                 "--hostname", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                lambda server: "ready." in server.log())
    return ([celery, "-A", "vmsite", "beat", "--loglevel", "INFO", "--schedule", str(data_dir / "celerybeat-schedule")],
            lambda server: "Starting..." in server.log())


@pytest.mark.integration
@pytest.mark.parametrize("process", ["web", "celery", "beat"])
def test_it_gives_the_web_server_and_workers_umask_077_and_refuses_an_open_folder(tmp_path, process, redis_ready):
    private = tmp_path / "private"
    assert manage(private, "private_data_dir").returncode == 0
    argv, started = command(process, private)
    server = stack.start_process(f"{process}-private", argv, log_dir=tmp_path, env=real_env(private))
    try:
        stack.wait_until(lambda: started(server) or server.process.poll() is not None, timeout=60,
                         message=f"{process} started")
        assert server.process.poll() is None, server.log()[-3000:]
        assert umask_of(server.pid) == "0077"
        made = modes(private)
        assert not {path: oct(mode) for path, mode in made.items() if mode & 0o077}, made
    finally:
        server.stop()

    exposed = exposed_install(tmp_path)
    argv, _started = command(process, exposed)
    refused = stack.start_process(f"{process}-exposed", argv, log_dir=tmp_path, env=real_env(exposed))
    try:
        stack.wait_until(lambda: refused.process.poll() is not None, timeout=60, message=f"{process} refusing")
        assert refused.process.returncode != 0
        assert "The data folder must be private to vmsite's user" in refused.log()
        assert f"{exposed / 'vmsite.sqlite3'} is mode 0644" in refused.log()
    finally:
        refused.stop()
