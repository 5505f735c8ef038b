"""A PostgreSQL server of a test's own, on a free port, that the test may stop and start again (the
machine's PostgreSQL on 5432 is never touched). Debian's server binaries, run as the `postgres`
user (the server refuses root) on a data folder made with initdb in a temporary folder."""
from __future__ import annotations

import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests import stack

BIN = Path("/usr/lib/postgresql/15/bin")
SERVICE_USER = "postgres"
DATABASE = "vmsite"


class OwnPostgres:
    def __init__(self) -> None:
        self.port = stack.free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="vmsite-own-pg-"))
        account = pwd.getpwnam(SERVICE_USER)
        shutil.chown(self.folder, account.pw_uid, account.pw_gid)
        self.data = self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgres://{SERVICE_USER}@127.0.0.1:{self.port}/{DATABASE}"

    def create(self) -> None:
        """A new cluster (trust on loopback: the test's own, gone with it) and its empty database."""
        self._as_service_user(BIN / "initdb", "-D", self.data, "-A", "trust", "-U", SERVICE_USER, "--no-sync")
        self.start()
        self._as_service_user(BIN / "createdb", "-h", "127.0.0.1", "-p", self.port, "-U", SERVICE_USER, DATABASE)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off"
        self._as_service_user(BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.folder / "server.log",
                              "-w", "-t", "30", "start")

    def stop(self) -> None:
        """A fast shutdown: the server ends every session at once, as a restart under load does."""
        self._as_service_user(BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _as_service_user(self, *argv) -> None:
        subprocess.run(["runuser", "-u", SERVICE_USER, "--", *map(str, argv)], check=True, capture_output=True,
                       timeout=60, cwd=self.folder)
