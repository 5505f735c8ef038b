"""Extra libvirt hosts for integration tests, all on this one machine.

Each host is its own libvirtd (plus virtlogd and sshd) inside a private mount +
UTS namespace: private /etc/libvirt, /run/libvirt, /var/lib/libvirt,
/var/log/libvirt, /var/cache/libvirt and /etc/hosts, hostname ``hostN``,
address ``127.0.0.N``.  See README.md next to this file.

Needs root.  Processes are only ever signalled by pid, and only if they live in
the host's own UTS namespace, so the main host's daemons and guests are safe.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.pki import PKI, make_pki

LIBVIRTD_TCP_PORT = 16509
LIBVIRTD_TLS_PORT = 16514
# DIGEST-MD5 gives the security layer libvirt insists on over plain TCP; SCRAM-SHA-256 has none,
# so libvirt takes it only over TLS (or a unix socket).
SASL_MECHANISMS = "digest-md5 scram-sha-256"
SSH_PORT = 22
START_TIMEOUT = 30.0
MIN_INDEX, MAX_INDEX = 2, 163  # 127.0.0.1 is the main host; port ranges must stay <= 65535
REGISTRY_DIR = Path("/run/vmsite-harness")  # records of live hosts, for stale cleanup

# state_dir subdirectory -> directory it is bind-mounted over inside the namespace
PRIVATE_DIRS = {
    "etc": "/etc/libvirt",
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "log": "/var/log/libvirt",
    "cache": "/var/cache/libvirt",
}
# persistent objects of the main host that must not show up on extra hosts
PRUNED_CONFIG_GLOBS = [
    "qemu/*.xml", "qemu/autostart/*",
    "qemu/networks/*.xml", "qemu/networks/autostart/*",
    "storage/*.xml", "storage/autostart/*",
    "secrets/*",
    "*.new",  # libvirt writes each definition as NAME.new and renames it: gone a moment later
]
CHILD_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
TERMINATING = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


class HarnessError(RuntimeError):
    pass


@dataclass
class HarnessHost:
    index: int
    address: str
    hostname: str
    host_uuid: str
    state_dir: Path
    ssh_private_key: Path
    ssh_public_key: Path
    ssh_host_public_key: str
    tcp_uri: str
    ssh_uri: str
    pids: list[int]
    known_hosts: Path  # "127.0.0.N ssh-ed25519 ..." pinning this host's sshd
    ssh_command: Path  # ssh wrapper that uses known_hosts + key; for ?command=
    holder_pid: int = 0
    pki: PKI | None = None  # with tls=True: libvirtd listens for TLS on 127.0.0.N:16514 with these
    sasl_users: dict[str, str] = field(default_factory=dict)  # with SASL: auth_tcp/auth_tls = "sasl"
    sasl_allowed: list[str] | None = None  # sasl_allowed_username_list: others authenticate, then are denied
    _holder: subprocess.Popen | None = field(default=None, repr=False, compare=False)
    _uts_ns: tuple[int, int] | None = field(default=None, repr=False, compare=False)
    _stopped: bool = field(default=False, repr=False, compare=False)

    @property
    def ssh_uri_pinned(self) -> str:
        """qemu+ssh URI that verifies the host key against known_hosts.

        The default (openssh binary) transport ignores ``known_hosts=``, only
        libssh/libssh2 honour it; so the pinning lives in the ssh wrapper.
        """
        return f"{self.ssh_uri}?command={self.ssh_command}&keyfile={self.ssh_private_key}"

    @property
    def socket_uri(self) -> str:
        """The host's own unix socket (auth none), for a test's set-up and cleanup when TCP asks for SASL."""
        return f"qemu:///system?socket={self.state_dir / 'run' / 'libvirt-sock'}"

    @property
    def tls_uri(self) -> str:
        return f"qemu+tls://{self.address}/system"

    @property
    def pki_dir(self) -> Path:
        """The client's pkipath: cacert.pem, clientcert.pem, clientkey.pem."""
        return self.state_dir / "pki" / "client"

    @property
    def sasl_dir(self) -> Path:
        return self.state_dir / "sasl2"

    @property
    def libssh_uri(self) -> str:
        return (f"qemu+libssh://root@{self.address}/system?keyfile={self.ssh_private_key}"
                f"&known_hosts={self.known_hosts}&known_hosts_verify=normal&sshauth=privkey")

    def libvirtd_pid(self) -> int | None:
        return _read_pidfile(self.state_dir / "run" / "libvirtd.pid")

    def kill_libvirtd(self, sig: int = signal.SIGKILL) -> None:
        pid = self.libvirtd_pid()
        if pid is None or not self._owns(pid):
            return
        os.kill(pid, sig)
        if sig in TERMINATING:
            _wait_until(lambda: not _alive(pid), 15, f"libvirtd {pid} did not exit")

    def start_libvirtd(self) -> None:
        res = self.run_in_ns(["libvirtd", "-d", "--listen", "-p", "/run/libvirt/libvirtd.pid"], env=self.daemon_env)
        if res.returncode != 0:
            raise HarnessError(f"libvirtd of {self.hostname} failed to start: "
                               f"{res.stderr.strip()}\n{_log_excerpts(self)}")
        self._remember(self.libvirtd_pid())
        self._save_record()
        _wait_until(lambda: self._virsh_ok(self.tcp_uri), START_TIMEOUT,
                    f"libvirtd of {self.hostname} does not answer on {self.tcp_uri}")

    def set_libvirtd_options(self, options: dict[str, str]) -> None:
        """Restart libvirtd with these libvirtd.conf settings (string values) in place of the harness's."""
        conf = self.state_dir / "etc" / "libvirtd.conf"
        kept = [line for line in conf.read_text().splitlines() if line.split(" = ")[0] not in options]
        conf.write_text("\n".join(kept + [f"{name} = {json.dumps(value)}" for name, value in options.items()]) + "\n")
        self.kill_libvirtd(signal.SIGTERM)
        self.start_libvirtd()

    def start_polkit(self) -> None:
        """A system D-Bus and polkitd of this host's own (its /run/dbus and /etc/polkit-1/rules.d
        private), so that libvirtd with auth_unix_rw = "polkit" asks a real polkit. Debian's rules in
        /usr/share/polkit-1/rules.d apply (60-libvirt.rules lets the libvirt group in)."""
        bus, rules = self.state_dir / "dbus", self.polkit_rules_dir
        bus.mkdir(mode=0o755)
        rules.mkdir(mode=0o755)
        started = self.run_in_ns(["sh", "-c", (
            f"mount --bind {_q(bus)} /run/dbus && mount --bind {_q(rules)} /etc/polkit-1/rules.d && "
            "dbus-daemon --system --fork --nopidfile && "
            f"(setsid /usr/lib/polkit-1/polkitd --no-debug > {_q(self.state_dir / 'polkitd.log')} 2>&1 &)")])
        if started.returncode != 0:
            raise HarnessError(f"polkit of {self.hostname} did not start: {started.stderr.strip()}")
        _wait_until(lambda: "org.freedesktop.PolicyKit1" in self.run_in_ns(
            ["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
             "org.freedesktop.DBus.ListNames"]).stdout, START_TIMEOUT, f"polkitd of {self.hostname} on its bus")

    @property
    def polkit_rules_dir(self) -> Path:
        """Bind-mounted over the host's /etc/polkit-1/rules.d by start_polkit; polkitd rereads it on change."""
        return self.state_dir / "polkit-rules"

    def authorize_ssh_key(self, public_key_line: str) -> None:
        """Let another client key log in as root (e.g. vmsite's own key)."""
        with open(self.state_dir / "ssh" / "authorized_keys", "a") as keys:
            keys.write(public_key_line.strip() + "\n")

    def replace_ssh_host_key(self) -> str:
        """Give sshd a new host key, as a reinstalled (or impersonated) host would; returns it."""
        hostkey = self.state_dir / "ssh" / "ssh_host_ed25519_key"
        for path in (hostkey, Path(f"{hostkey}.pub")):
            path.unlink()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{self.hostname}",
                        "-f", str(hostkey)], check=True, env=CHILD_ENV, stdin=subprocess.DEVNULL)
        sshd_pid = _read_pidfile(self.state_dir / "ssh" / "sshd.pid")
        if sshd_pid is None or not self._owns(sshd_pid):
            raise HarnessError(f"sshd of {self.hostname} is not running")
        os.kill(sshd_pid, signal.SIGHUP)  # sshd re-executes itself and reads its host keys again
        key_type, key_b64 = Path(f"{hostkey}.pub").read_text().split()[:2]
        self.ssh_host_public_key = f"{key_type} {key_b64}"
        # The old listener may still accept for a moment after the signal: wait for the new key itself.
        _wait_until(lambda: _presents_key(self.address, key_b64), START_TIMEOUT, f"sshd of {self.hostname} back")
        return self.ssh_host_public_key

    @property
    def daemon_env(self) -> dict[str, str]:
        """libvirtd's environment: its own SASL configuration folder when it asks for SASL."""
        return {**CHILD_ENV, "SASL_CONF_PATH": str(self.sasl_dir)} if self.sasl_users else CHILD_ENV

    def run_in_ns(self, argv: list[str], timeout: float = 60, check: bool = False,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        if not self._owns(self.holder_pid):
            raise HarnessError(f"namespace holder of {self.hostname} is gone")
        cmd = ["nsenter", "-t", str(self.holder_pid), "-m", "-u", "--", *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              check=check, env=env or CHILD_ENV, cwd="/", stdin=subprocess.DEVNULL)

    def virsh(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """virsh against this host's local socket, from inside its namespace."""
        return self.run_in_ns(["virsh", "-c", "qemu:///system", *args], timeout=timeout)

    def running_pids(self) -> list[int]:
        """Live processes of this host: everything in its UTS namespace (qemu included)."""
        if self._uts_ns is None:
            return []
        return sorted(p for p in _all_pids() if _ns_id(p) == self._uts_ns and _alive(p))

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self._destroy_guests()
        finally:
            self._kill_everything()
            shutil.rmtree(self.state_dir, ignore_errors=True)
            (REGISTRY_DIR / f"host{self.index}.json").unlink(missing_ok=True)

    # -- internals -----------------------------------------------------------

    def _virsh_ok(self, uri: str) -> bool:
        env = CHILD_ENV
        if self.sasl_users and uri.startswith(("qemu+tcp:", "qemu+tls:")):  # an allowed user's password
            env = {**CHILD_ENV, "LIBVIRT_AUTH_FILE": str(self.sasl_dir / "auth.conf")}
        if uri.startswith("qemu+tls:"):
            uri = f"{uri}?pkipath={self.pki_dir}"
        try:
            res = subprocess.run(["virsh", "-c", uri, "hostname"], capture_output=True,
                                 text=True, timeout=10, env=env, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False
        return res.returncode == 0 and res.stdout.strip() == self.hostname

    def _destroy_guests(self) -> None:
        """Graceful part of stop(); the namespace sweep afterwards kills qemu anyway."""
        pid = self.libvirtd_pid()
        if pid is None or not self._owns(pid) or not self._owns(self.holder_pid):
            return
        _signal(pid, signal.SIGCONT)  # in case a test left it SIGSTOPped
        try:
            for name in self.virsh("list", "--name", timeout=15).stdout.split():
                self.virsh("destroy", name, timeout=30)
        except subprocess.TimeoutExpired:
            pass  # hung or SIGSTOPped libvirtd

    def _kill_everything(self) -> None:
        # Once its last process is gone, the kernel may give the namespace's inode to a new namespace
        # (another test's host): so the end is checked on the processes seen here, not on the inode.
        seen = {self.holder_pid}
        for sig in (signal.SIGTERM, signal.SIGKILL):
            victims = [p for p in self.running_pids() if p != self.holder_pid]
            seen.update(victims)
            for pid in victims:
                _signal(pid, sig)
                _signal(pid, signal.SIGCONT)  # a SIGSTOPped daemon must see SIGTERM
            if _wait_for(lambda: not any(_alive(p) for p in victims), 5):
                break
        if self._holder is not None:
            self._holder.kill()
            self._holder.wait(timeout=10)
        elif self._owns(self.holder_pid):
            _signal(self.holder_pid, signal.SIGKILL)
        if not _wait_for(lambda: not any(_alive(p) for p in seen), 10):
            raise HarnessError(f"{self.hostname}: still running: {[p for p in seen if _alive(p)]}")

    def _owns(self, pid: int) -> bool:
        """pid is alive in this host's namespace (guards against pid reuse)."""
        return self._uts_ns is not None and _ns_id(pid) == self._uts_ns and _alive(pid)

    def _remember(self, pid: int | None) -> None:
        if pid is not None and pid not in self.pids:
            self.pids.append(pid)

    def _save_record(self) -> None:
        REGISTRY_DIR.mkdir(mode=0o700, exist_ok=True)
        record = {"index": self.index, "state_dir": str(self.state_dir),
                  "host_uuid": self.host_uuid, "holder_pid": self.holder_pid,
                  "uts_ns": self._uts_ns, "pids": self.pids, "owner": _process_identity(os.getpid())}
        (REGISTRY_DIR / f"host{self.index}.json").write_text(json.dumps(record))


def start_host(index: int, base_dir: Path, *, tls: bool = False, sasl_users: dict[str, str] | None = None,
               sasl_allowed: list[str] | None = None) -> HarnessHost:
    """Start extra host N; return once it answers on tcp and ssh (and TLS with tls=True).

    With sasl_users ({name: password}), TCP and TLS clients must log in through SASL (a sasldb made
    with saslpasswd2, mech_list SASL_MECHANISMS); with sasl_allowed too, only those users are then
    let in (libvirtd's sasl_allowed_username_list), the others are denied after logging in."""
    host = _prepare_host(index, Path(base_dir), tls=tls, sasl_users=sasl_users or {}, sasl_allowed=sasl_allowed)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        _launch_holder(host)
        _wait_until(lambda: _holder_ready(host), START_TIMEOUT, "namespace holder not ready")
        for pidfile in ("run/virtlogd.pid", "ssh/sshd.pid", "run/libvirtd.pid"):
            host._remember(_read_pidfile(host.state_dir / pidfile))
        host._save_record()
        for uri in (host.tcp_uri, host.ssh_uri_pinned, *([host.tls_uri] if tls else [])):
            _wait_until(lambda: host._virsh_ok(uri), max(5.0, deadline - time.monotonic()),
                        f"no answer on {uri}")
    except BaseException as exc:
        logs = _log_excerpts(host)
        try:
            host.stop()
        except HarnessError as stop_exc:
            logs += f"\n(cleanup failed too: {stop_exc})"
        if isinstance(exc, HarnessError):
            raise HarnessError(f"{host.hostname}: {exc}\n{logs}") from exc
        raise
    return host


def ensure_unprivileged_user(name: str) -> None:
    """A system user (not root) that may log in to harness sshds with a key (its password is '*', not
    locked); its own group has its name. Made once on this machine, kept after."""
    if subprocess.run(["id", name], capture_output=True, env=CHILD_ENV).returncode != 0:
        subprocess.run(["useradd", "--system", "--user-group", "--shell", "/bin/sh", "--no-create-home",
                        "--home-dir", "/nonexistent", name], check=True, env=CHILD_ENV, capture_output=True)
    subprocess.run(["usermod", "-p", "*", name], check=True, env=CHILD_ENV, capture_output=True)


def stop_stale_hosts(indices: list[int] | None = None) -> list[int]:
    """Stop hosts left running by an earlier, killed test run; return their indices."""
    stopped = []
    for path in sorted(REGISTRY_DIR.glob("host*.json")):
        # The index from the name, before reading: another worker may be stopping (and unregistering)
        # the hosts of its own range at this moment.
        if indices is not None and int(path.stem.removeprefix("host")) not in indices:
            continue
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:  # stopped meanwhile
            continue
        owner = record.get("owner")
        if owner_alive(owner):
            raise HarnessError(f"harness host {record['index']} belongs to a test run still going (pid {owner[0]}): "
                               "give this run other indices (VMSITE_HARNESS_FIRST_INDEX, VMSITE_HARNESS_INDEX_COUNT)")
        host = _describe(record["index"], Path(record["state_dir"]), record["host_uuid"])
        host.holder_pid, host.pids = record["holder_pid"], record["pids"]
        host._uts_ns = tuple(record["uts_ns"]) if record["uts_ns"] else None
        if host._uts_ns == _ns_id(os.getpid()):
            raise HarnessError(f"{path} names our own namespace; refusing")
        host.stop()
        stopped.append(host.index)
    return stopped


def owner_alive(owner: list[int] | None) -> bool:
    """Whether the process an identity names (see _process_identity) still runs."""
    return bool(owner) and _process_identity(owner[0]) == tuple(owner)


def _process_identity(pid: int) -> tuple[int, int] | None:
    """(pid, start time in clock ticks since boot): names one process, even after its pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return pid, int(stat.rsplit(")", 1)[1].split()[19])


# -- preparation ---------------------------------------------------------------

def _describe(index: int, state_dir: Path, host_uuid: str) -> HarnessHost:
    address, ssh = f"127.0.0.{index}", state_dir / "ssh"
    return HarnessHost(
        index=index, address=address, hostname=f"host{index}", host_uuid=host_uuid,
        state_dir=state_dir, ssh_private_key=ssh / "id_ed25519",
        ssh_public_key=ssh / "id_ed25519.pub", ssh_host_public_key="",
        tcp_uri=f"qemu+tcp://{address}/system", ssh_uri=f"qemu+ssh://root@{address}/system",
        pids=[], known_hosts=ssh / "known_hosts", ssh_command=ssh / "ssh")


def _prepare_host(index: int, base_dir: Path, *, tls: bool, sasl_users: dict[str, str],
                  sasl_allowed: list[str] | None) -> HarnessHost:
    if not MIN_INDEX <= index <= MAX_INDEX:
        raise HarnessError(f"index must be in [{MIN_INDEX}, {MAX_INDEX}], got {index}")
    if os.geteuid() != 0:
        raise HarnessError("extra libvirt hosts need root")
    _check_address_free(index)
    state_dir = base_dir.resolve() / f"host{index}"
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    state_dir.chmod(0o755)
    host = _describe(index, state_dir, str(uuid.uuid4()))
    host.sasl_users, host.sasl_allowed = dict(sasl_users), sasl_allowed
    if tls:
        host.pki = make_pki(host.address, host.hostname)
        _write_pki(host)
    if sasl_users:
        _write_sasl(host)
    _make_private_dirs(host)
    _write_libvirt_config(host)
    _write_hosts_file(host)
    _write_ssh_files(host)
    _write_holder_script(host)
    return host


def _check_address_free(index: int) -> None:
    address = f"127.0.0.{index}"
    if _stale_record_alive(index):
        raise HarnessError(f"host{index} of an earlier run is still up: stop_stale_hosts"
                           f"([{index}]) or `python -m tests.harness.libvirt_hosts cleanup`")
    busy = [port for port in (LIBVIRTD_TCP_PORT, LIBVIRTD_TLS_PORT, SSH_PORT) if _port_open(address, port)]
    if busy:
        raise HarnessError(f"{address} ports {busy} are already in use")


def _stale_record_alive(index: int) -> bool:
    try:
        ns = json.loads((REGISTRY_DIR / f"host{index}.json").read_text())["uts_ns"]
    except (OSError, ValueError, KeyError):
        return False
    return ns is not None and any(_ns_id(p) == tuple(ns) and _alive(p) for p in _all_pids())


def _make_private_dirs(host: HarnessHost) -> None:
    shutil.copytree(PRIVATE_DIRS["etc"], host.state_dir / "etc", symlinks=True, ignore=_pruned_config)
    for name in ("run", "lib", "log", "cache"):
        (host.state_dir / name).mkdir(mode=0o755)
    _seed_qemu_caps_cache(host.state_dir / "cache")
    (host.state_dir / "ssh").mkdir(mode=0o700)


def _pruned_config(folder: str, names: list[str]) -> set[str]:
    """The main host's objects (PRUNED_CONFIG_GLOBS), left out as the folder is copied: other tests
    define and undefine them meanwhile, so a file listed may be gone when its turn to be copied comes."""
    relative = Path(folder).relative_to(PRIVATE_DIRS["etc"])
    return {name for name in names
            if any(fnmatch.fnmatchcase(str(relative / name), pattern) for pattern in PRUNED_CONFIG_GLOBS)}


def _seed_qemu_caps_cache(cache: Path) -> None:
    """Reuse the main host's QEMU capabilities cache instead of probing QEMU again.

    libvirt revalidates cached entries (binary ctime, libvirt version, ...), so
    a stale copy only costs the probe it would have cost anyway.
    """
    src = Path(PRIVATE_DIRS["cache"]) / "qemu" / "capabilities"
    if src.is_dir():
        shutil.copytree(src, cache / "qemu" / "capabilities")


def _write_libvirt_config(host: HarnessHost) -> None:
    n, addr = host.index, host.address
    etc = host.state_dir / "etc"
    auth = "sasl" if host.sasl_users else "none"
    (etc / "libvirtd.conf").write_text(textwrap.dedent(f"""\
        # generated by tests/harness/libvirt_hosts.py for {host.hostname}
        listen_tls = {int(host.pki is not None)}
        listen_tcp = 1
        listen_addr = "{addr}"
        auth_tcp = "{auth}"
        auth_tls = "{auth}"
        auth_unix_ro = "none"
        auth_unix_rw = "none"
        host_uuid = "{host.host_uuid}"
        log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
        """) + _tls_config(host) + _sasl_allowed_config(host))
    # cgroup_controllers = [ ]: machine cgroups are /machine/qemu-<id>-<name>,
    # global to the machine, so same-named guests of two hosts would share one.
    (etc / "qemu.conf").write_text(textwrap.dedent(f"""\
        # generated by tests/harness/libvirt_hosts.py for {host.hostname}
        vnc_listen = "{addr}"
        spice_listen = "{addr}"
        remote_display_port_min = {5900 + n * 100}
        remote_display_port_max = {5900 + n * 100 + 99}
        migration_address = "{addr}"
        migration_host = "{addr}"
        migration_port_min = {49152 + n * 100}
        migration_port_max = {min(49152 + n * 100 + 99, 65535)}
        cgroup_controllers = [ ]
        security_driver = "none"
        """))


def _tls_config(host: HarnessHost) -> str:
    if host.pki is None:
        return ""
    server = host.state_dir / "pki" / "server"
    return (f'key_file = "{server / "serverkey.pem"}"\ncert_file = "{server / "servercert.pem"}"\n'
            f'ca_file = "{server / "cacert.pem"}"\n')


def _sasl_allowed_config(host: HarnessHost) -> str:
    if host.sasl_allowed is None:
        return ""
    return "sasl_allowed_username_list = [ " + ", ".join(json.dumps(name) for name in host.sasl_allowed) + " ]\n"


def _write_pki(host: HarnessHost) -> None:
    pki, server = host.pki, host.state_dir / "pki" / "server"
    for folder, files in ((server, {"cacert.pem": pki.ca_pem, "servercert.pem": pki.server_cert_pem,
                                    "serverkey.pem": pki.server_key_pem}),
                          (host.pki_dir, {"cacert.pem": pki.ca_pem, "clientcert.pem": pki.client_cert_pem,
                                          "clientkey.pem": pki.client_key_pem})):
        folder.mkdir(parents=True, mode=0o700)
        for name, data in files.items():
            (folder / name).write_bytes(data)
            (folder / name).chmod(0o600)


def _write_sasl(host: HarnessHost) -> None:
    """/etc/sasl2/libvirt.conf for this libvirtd alone (SASL_CONF_PATH), its sasldb, and an auth.conf
    with an allowed user's password for the harness's own readiness checks."""
    folder = host.sasl_dir
    folder.mkdir(mode=0o700)
    database = folder / "passwd.db"
    (folder / "libvirt.conf").write_text(f"mech_list: {SASL_MECHANISMS}\nsasldb_path: {database}\n")
    for user, password in host.sasl_users.items():
        subprocess.run(["saslpasswd2", "-p", "-a", "libvirt", "-u", host.hostname, "-f", str(database), "-c", user],
                       input=password, text=True, check=True, env=CHILD_ENV, capture_output=True)
    user = next(name for name in host.sasl_users if host.sasl_allowed is None or name in host.sasl_allowed)
    (folder / "auth.conf").write_text(
        f"[credentials-harness]\nauthname={user}\npassword={host.sasl_users[user]}\n\n"
        f"[auth-libvirt-{host.address}]\ncredentials=harness\n")


def _write_hosts_file(host: HarnessHost) -> None:
    """hostN must resolve from /etc/hosts, or libvirtd's lookup of it would go to DNS."""
    base = Path("/etc/hosts").read_text()
    (host.state_dir / "hosts").write_text(f"{base.rstrip()}\n{host.address} {host.hostname}\n")


def _write_ssh_files(host: HarnessHost) -> None:
    ssh = host.state_dir / "ssh"
    hostkey = ssh / "ssh_host_ed25519_key"
    for key, comment in ((host.ssh_private_key, f"harness-client@{host.hostname}"),
                         (hostkey, f"root@{host.hostname}")):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                        "-f", str(key)], check=True, env=CHILD_ENV, stdin=subprocess.DEVNULL)
    shutil.copyfile(host.ssh_public_key, ssh / "authorized_keys")
    key_type, key_b64 = Path(f"{hostkey}.pub").read_text().split()[:2]
    host.ssh_host_public_key = f"{key_type} {key_b64}"
    host.known_hosts.write_text(f"{host.address} {host.ssh_host_public_key}\n")
    (ssh / "sshd_config").write_text(_sshd_config(host, hostkey))
    _write_ssh_wrapper(host)


def _sshd_config(host: HarnessHost, hostkey: Path) -> str:
    ssh = host.state_dir / "ssh"
    authorized = str(ssh / "authorized_keys").replace("%", "%%")
    return textwrap.dedent(f"""\
        ListenAddress {host.address}:{SSH_PORT}
        HostKey "{hostkey}"
        PidFile "{ssh / 'sshd.pid'}"
        AuthorizedKeysFile "{authorized}"
        # for users other than root, who cannot read the file in root's folder
        AuthorizedKeysCommand /bin/cat "{authorized}"
        AuthorizedKeysCommandUser root
        PermitRootLogin prohibit-password
        PubkeyAuthentication yes
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        StrictModes no
        UsePAM no
        UseDNS no
        X11Forwarding no
        PrintMotd no
        PrintLastLog no
        """)


def _write_ssh_wrapper(host: HarnessHost) -> None:
    opts = [
        "-F", "/dev/null",  # neither ~/.ssh/config nor /etc/ssh/ssh_config
        "-o", f"UserKnownHostsFile={host.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", f"IdentityFile={host.ssh_private_key}",
    ]
    host.ssh_command.write_text(f'#!/bin/sh\nexec ssh {shlex.join(opts)} "$@"\n')
    host.ssh_command.chmod(0o755)


def _write_holder_script(host: HarnessHost) -> None:
    s = host.state_dir
    mounts = "\n".join(f"mount --bind {_q(s / name)} {_q(target)}"
                       for name, target in PRIVATE_DIRS.items())
    sasl_env = f"SASL_CONF_PATH={_q(host.sasl_dir)} " if host.sasl_users else ""
    (s / "holder.sh").write_text(f"""\
#!/bin/sh
# namespace holder of {host.hostname}, run by: unshare --mount --uts --propagation private tini -s --
set -eu
{mounts}
mount --bind {_q(s / 'hosts')} /etc/hosts
hostname {host.hostname}
# sshd insists on its privilege separation dir; this one is the machine's own /run/sshd
mkdir -p /run/sshd && chmod 0755 /run/sshd
virtlogd -d -p /run/libvirt/virtlogd.pid
/usr/sbin/sshd -f {_q(s / 'ssh' / 'sshd_config')} -E {_q(s / 'ssh' / 'sshd.log')}
{sasl_env}libvirtd -d --listen -p /run/libvirt/libvirtd.pid
touch {_q(s / 'holder.ready')}
exec sleep infinity
""")


def _q(path: Path | str) -> str:
    return shlex.quote(str(path))


# -- launching -----------------------------------------------------------------

# The holder reaps its host's orphans (the daemons, and each QEMU libvirtd starts): they would go to
# the machine's init, which here reaps them only every 2 s or so, and libvirtd waits for a stopped
# QEMU's pid to be gone: each VM's stop took 2 s, not 10 ms (README, "Test suite").
REAPER = ["tini", "-s", "--"]


def _launch_holder(host: HarnessHost) -> None:
    with open(host.state_dir / "holder.log", "wb") as log:
        host._holder = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--propagation", "private",
             *REAPER, "/bin/sh", str(host.state_dir / "holder.sh")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=CHILD_ENV, cwd="/", start_new_session=True)
    host.holder_pid = host._holder.pid
    host.pids.append(host.holder_pid)
    _wait_until(lambda: _holder_unshared(host), 10, "unshare did not create namespaces")
    host._save_record()


def _holder_unshared(host: HarnessHost) -> bool:
    """Learn the namespace id as soon as it exists, so stop() can sweep it."""
    _check_holder_running(host)
    ns = _ns_id(host.holder_pid)
    if ns is None or ns == _ns_id(os.getpid()):
        return False
    host._uts_ns = ns
    return True


def _holder_ready(host: HarnessHost) -> bool:
    _check_holder_running(host)
    return (host.state_dir / "holder.ready").exists()


def _check_holder_running(host: HarnessHost) -> None:
    if host._holder is not None and host._holder.poll() is not None:
        raise HarnessError(f"namespace holder exited with {host._holder.returncode}")


def _log_excerpts(host: HarnessHost, lines: int = 25) -> str:
    parts = []
    for rel in ("holder.log", "log/libvirtd.log", "log/virtlogd.log", "ssh/sshd.log"):
        path = host.state_dir / rel
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path} ---\n" + "\n".join(tail))
    return "\n".join(parts) or "(no logs)"


# -- process helpers -------------------------------------------------------------

def _read_pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _ns_id(pid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/uts")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _alive(pid: int) -> bool:
    """Exists and is not a zombie (init on this machine reaps orphans only every few s)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _port_open(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((address, port)) == 0


def _presents_key(address: str, key_b64: str) -> bool:
    scan = subprocess.run(["ssh-keyscan", "-T", "2", "-t", "ed25519", "-p", str(SSH_PORT), address],
                          capture_output=True, text=True, env=CHILD_ENV, stdin=subprocess.DEVNULL)
    return key_b64 in scan.stdout


def _wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def _wait_until(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    if not _wait_for(predicate, timeout):
        raise HarnessError(f"{message} (after {timeout:.0f} s)")


if __name__ == "__main__":
    if sys.argv[1:] != ["cleanup"]:
        sys.exit("usage: python -m tests.harness.libvirt_hosts cleanup")
    print("stopped:", " ".join(f"host{i}" for i in stop_stale_hosts()) or "nothing")
