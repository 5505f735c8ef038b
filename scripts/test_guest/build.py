#!/usr/bin/env python3
"""Build the suite's tiny real guest OS from Debian packages alone, into a cache outside the repo.

    scripts/test_guest/build.py [--cache /var/cache/vmsite]   prints the guest's folder

The guest is Debian's kernel (linux-image-amd64), booted directly, and an initramfs holding
busybox-static, the virtio and ACPI modules it needs, qemu-guest-agent with its libraries, and
the small init under rootfs/. Packages are fetched with `apt-get download` and unpacked with
`dpkg-deb -x`: nothing is installed on the host. The folder is named after a hash of every
input (package versions, the agent's libraries, this script, rootfs/), so a change of any of
them builds a new one and a second run with the same inputs only prints the folder.

Standard library only: scripts/setup.sh runs it before the virtual environment matters.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOTFS = HERE / "rootfs"
DEFAULT_CACHE = Path("/var/cache/vmsite")
PACKAGES = ("linux-image-amd64", "busybox-static", "qemu-guest-agent")
AGENT = "usr/sbin/qemu-ga"
# Modules the guest loads, in this order after their dependencies. Hot-plug itself (ACPI PCI
# hot-plug on i440fx, PCIe hot-plug, vCPU and memory hot-plug) is built into Debian's kernel.
MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "virtio_balloon", "button", "evdev")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    folder = build(args.cache)
    probe_kvm(folder)
    print(folder)
    return 0


def build(cache: Path) -> Path:
    """The guest's folder (vmlinuz, vmlinux, initrd.gz, manifest.json), built unless already there."""
    state = apt_state()
    known = _known_folder(cache, state)
    if known is not None:
        return known
    target = _build(cache)
    _remember_folder(cache, state, target)
    return target


# Asking apt for the inputs' versions takes 3-4 s of CPU (apt-cache reads its whole package cache),
# and every pytest-xdist worker asks for the guest's folder. Apt's answers change only when its
# lists, its configuration or the installed packages do, so the folder found last is kept with
# those files' modification times and this script's and rootfs/'s contents, and reused while all
# of them are the same.
APT_STATE_PATHS = ("/var/lib/apt/lists", "/var/lib/dpkg/status", "/etc/apt", "/etc/apt/sources.list.d",
                   "/etc/apt/preferences.d", "/etc/apt/sources.list", "/etc/apt/preferences")


def apt_state() -> dict:
    """What the inputs' versions follow from: apt's and dpkg's files (modification times), this
    script and rootfs/ (contents)."""
    times = {}
    for name in APT_STATE_PATHS:
        try:
            times[name] = os.stat(name).st_mtime_ns
        except FileNotFoundError:
            times[name] = None
    return {"apt": times, "build_script": sha256_file(Path(__file__).resolve()), "rootfs": _rootfs_sums()}


def _known_folder(cache: Path, state: dict) -> Path | None:
    try:
        memo = json.loads((cache / "guest-folder.json").read_text())
    except (OSError, ValueError):
        return None
    folder = Path(memo.get("folder", ""))
    return folder if memo.get("state") == state and (folder / "manifest.json").exists() else None


def _remember_folder(cache: Path, state: dict, folder: Path) -> None:
    memo = cache / "guest-folder.json"
    temporary = memo.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"state": state, "folder": str(folder)}) + "\n")
    temporary.replace(memo)


def _rootfs_sums() -> dict[str, str]:
    return {str(path.relative_to(ROOTFS)): sha256_file(path) + oct(path.stat().st_mode & 0o777)
            for path in sorted(ROOTFS.rglob("*")) if path.is_file()}


def _build(cache: Path) -> Path:
    versions = candidate_versions()
    kernel_package = kernel_package_name()
    inputs = {
        "packages": versions,
        "kernel_package": kernel_package,
        "agent_libraries": host_library_versions(),
        "build_script": sha256_file(Path(__file__).resolve()),
        "rootfs": _rootfs_sums(),
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    target = cache / f"guest-{key}"
    if (target / "manifest.json").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o755)  # qemu runs as libvirt-qemu and must read the kernel and the initrd
    with tempfile.TemporaryDirectory(prefix="vmsite-guest-build-") as scratch_name:
        scratch = Path(scratch_name)
        scratch.chmod(0o755)  # apt-get download drops to the _apt user, who must reach the folder
        debs = download([*PACKAGES[1:], kernel_package], scratch / "debs")
        unpacked = scratch / "unpacked"
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
        staging = Path(tempfile.mkdtemp(prefix=f"guest-{key}.", dir=cache))
        try:
            kernel_release = single(p.name for p in (unpacked / "lib/modules").iterdir())
            shutil.copyfile(unpacked / f"boot/vmlinuz-{kernel_release}", staging / "vmlinuz")
            write_vmlinux(staging / "vmlinuz", staging / "vmlinux")
            files = initramfs_files(unpacked, kernel_release)
            write_initramfs(files, staging / "initrd.gz")
            manifest = {"key": key, "kernel_release": kernel_release, "inputs": inputs}
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            for path in staging.iterdir():
                path.chmod(0o644)
            staging.chmod(0o755)
            try:
                staging.rename(target)  # atomic: a concurrent build of the same inputs loses harmlessly
            except OSError:
                if not (target / "manifest.json").exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


# ---------------------------------------------------------------------------------------------
# Can KVM boot it here?

KVM_PROBE_SECONDS = 30


def probe_kvm(folder: Path) -> dict:
    """Boot the guest once under KVM, straight with qemu, and record whether its shell answered
    within KVM_PROBE_SECONDS (kvm-probe-<folder>.json next to it). /dev/kvm can be there and still
    unfit: under some nested hypervisors (kvm_pvm) a stock kernel does not get past its
    decompressor in minutes. Tests boot the guest with KVM only when this probe saw it work."""
    record = folder.parent / f"kvm-probe-{folder.name}.json"
    if record.exists():
        return json.loads(record.read_text())
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        result = {"kvm_boots": False, "reason": "/dev/kvm is not usable"}
    else:
        result = _boot_with_kvm(folder)
    record.write_text(json.dumps(result) + "\n")
    record.chmod(0o644)
    return result


def _boot_with_kvm(folder: Path) -> dict:
    import socket
    import time

    with tempfile.TemporaryDirectory(prefix="vmsite-kvm-probe-") as scratch:
        serial = Path(scratch) / "serial.sock"
        qemu = subprocess.Popen(
            ["qemu-system-x86_64", "-machine", "pc,accel=kvm", "-m", "192", "-nodefaults", "-display", "none",
             "-no-reboot", "-kernel", str(folder / "vmlinux"), "-initrd", str(folder / "initrd.gz"),
             "-append", "console=ttyS0 quiet", "-serial", f"unix:{serial},server=on,wait=off"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started = time.monotonic()
        try:
            output = b""
            with socket.socket(socket.AF_UNIX) as console:
                while not serial.exists() and qemu.poll() is None and time.monotonic() - started < 5:
                    time.sleep(0.05)
                console.connect(str(serial))
                console.settimeout(1)
                while time.monotonic() - started < KVM_PROBE_SECONDS and qemu.poll() is None:
                    try:
                        output += console.recv(4096)
                    except socket.timeout:
                        console.sendall(b"\n")
                    if b"guest# " in output:
                        return {"kvm_boots": True, "seconds_to_prompt": round(time.monotonic() - started, 1)}
        except OSError as exc:
            return {"kvm_boots": False, "reason": f"the probe's console failed: {exc}"}
        finally:
            qemu.kill()
            stderr = qemu.communicate()[1].decode(errors="replace").strip()
        reason = f"no shell within {KVM_PROBE_SECONDS} s under KVM" + (f" ({stderr[-300:]})" if stderr else "")
        return {"kvm_boots": False, "reason": reason}


# ---------------------------------------------------------------------------------------------
# Inputs


def candidate_versions() -> dict[str, str]:
    """The version apt would fetch of each package: the cache key, so an update rebuilds."""
    out = apt_show(*PACKAGES)
    return dict(re.findall(r"^Package: (\S+)\nVersion: (\S+)", out, re.MULTILINE))


def kernel_package_name() -> str:
    """linux-image-amd64 is a metapackage; the kernel is in the package it depends on."""
    match = re.search(r"^Depends: (linux-image-[^\s,(]+)", apt_show("linux-image-amd64"), re.MULTILINE)
    if not match:
        raise SystemExit("linux-image-amd64 names no kernel package (apt-get update?)")
    return match.group(1)


def apt_show(*packages: str) -> str:
    result = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"apt-cache show {' '.join(packages)} failed: {result.stderr.strip()} (apt-get update?)")
    # Only the fields used, one stanza per package, in a stable form.
    return "\n".join(line for line in result.stdout.splitlines() if line.startswith(("Package:", "Version:", "Depends:")))


def host_library_versions() -> dict[str, str]:
    """The installed versions of the host's packages the agent's libraries come from: the
    agent's dependencies and theirs (glib brings pcre2). A library update rebuilds the guest."""
    agent = re.search(r"^Depends: (.*)$", apt_show("qemu-guest-agent"), re.MULTILINE)
    names = _package_names(agent.group(1) if agent else "")
    versions: dict[str, str] = {}
    for depth in range(2):
        wanted = [name for name in names if name not in versions]
        if not wanted:
            break
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Depends}\n", *wanted],
                             capture_output=True, text=True).stdout
        names = []
        for line in out.splitlines():
            package, version, depends = (line.split("\t") + ["", ""])[:3]
            versions[package] = version
            names += _package_names(depends)
    return dict(sorted(versions.items()))


def _package_names(depends: str) -> list[str]:
    return [re.split(r"[\s(:]", alternative.strip())[0]
            for alternative in re.split(r"[,|]", depends) if alternative.strip()]


def download(packages: list[str], folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    subprocess.run(["apt-get", "download", "-q", *packages], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL)
    return sorted(folder.glob("*.deb"))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def single(items) -> str:
    items = list(items)
    if len(items) != 1:
        raise SystemExit(f"expected one kernel in the package, found {items}")
    return items[0]


def write_vmlinux(bzimage: Path, target: Path) -> None:
    """The kernel's ELF image, unpacked from the bzImage's xz payload. QEMU boots it straight in
    64-bit mode through its PVH entry point (Debian's kernel has CONFIG_PVH): no real-mode set-up
    and no decompression in the guest, which under TCG more than halves the time to the prompt."""
    import lzma

    data = bzimage.read_bytes()
    start = data.find(b"\xfd7zXZ\x00")
    if start < 0:
        raise SystemExit(f"{bzimage} holds no xz payload (was the kernel built with CONFIG_KERNEL_XZ?)")
    elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
    if not elf.startswith(b"\x7fELF"):
        raise SystemExit(f"the xz payload of {bzimage} is not an ELF kernel")
    target.write_bytes(elf)


# ---------------------------------------------------------------------------------------------
# The initramfs: (path in the guest, mode, bytes or symlink target or device numbers)

Entry = tuple[str, int, bytes | str | tuple[int, int]]


def initramfs_files(unpacked: Path, kernel_release: str) -> list[Entry]:
    entries: list[Entry] = []
    for folder in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "lib", "lib64", "lib/modules", "etc", "dev",
                   "proc", "sys", "run", "tmp", "root", "var"):
        entries.append((folder, stat.S_IFDIR | 0o755, b""))
    entries.append(("dev/console", stat.S_IFCHR | 0o600, (5, 1)))
    entries.append(("dev/ttyS0", stat.S_IFCHR | 0o660, (4, 64)))
    busybox = unpacked / "bin/busybox"
    entries.append(("bin/busybox", stat.S_IFREG | 0o755, busybox.read_bytes()))
    applets = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    seen = {"bin/busybox"}
    for applet in applets:
        if applet not in seen and applet.split("/")[0] in ("bin", "sbin", "usr"):
            seen.add(applet)
            entries.append((applet, stat.S_IFLNK | 0o777, "/bin/busybox"))
    # The guest agent and its libraries (resolved by ldd against the host's copies).
    entries.append((AGENT, stat.S_IFREG | 0o755, (unpacked / AGENT).read_bytes()))
    for library in agent_libraries(unpacked / AGENT):
        entries.append((library.lstrip("/"), stat.S_IFREG | 0o755, Path(library).read_bytes()))
    # Modules, each after its dependencies; the guest loads them in the order of etc/modules.
    modules_root = unpacked / "lib/modules" / kernel_release
    order = module_load_order(modules_root, MODULES)
    for relative in order:
        entries.append((f"lib/modules/{relative}", stat.S_IFREG | 0o644, (modules_root / relative).read_bytes()))
    entries.append(("etc/modules", stat.S_IFREG | 0o644, "".join(f"{m}\n" for m in order).encode()))
    for path in sorted(ROOTFS.rglob("*")):
        relative = str(path.relative_to(ROOTFS))
        if path.is_dir():
            entries.append((relative, stat.S_IFDIR | 0o755, b""))
        else:
            entries.append((relative, stat.S_IFREG | (path.stat().st_mode & 0o777), path.read_bytes()))
    return _with_parent_folders(entries)


def agent_libraries(binary: Path) -> list[str]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    libraries = []
    for line in out.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            libraries.append(match.group(1))
    if not any("libglib" in library for library in libraries):
        raise SystemExit(f"ldd found no glib for qemu-ga; is libglib2.0-0 installed?\n{out}")
    return libraries


def module_load_order(modules_root: Path, wanted: tuple[str, ...]) -> list[str]:
    """Paths (relative to modules_root) of the wanted modules and their dependencies, each after
    what it depends on; dependencies are read from each module's own .modinfo (no depmod)."""
    by_name = {path.name.removesuffix(".ko").replace("-", "_"): path
               for path in modules_root.rglob("*.ko")}
    order: list[str] = []

    def visit(name: str) -> None:
        path = by_name.get(name)
        if path is None:
            raise SystemExit(f"module {name} is not in the kernel package")
        relative = str(path.relative_to(modules_root))
        if relative in order:
            return
        for dependency in module_depends(path):
            visit(dependency)
        order.append(relative)

    for name in wanted:
        visit(name)
    return order


def module_depends(path: Path) -> list[str]:
    match = re.search(rb"depends=([\w,-]*)\0", path.read_bytes())
    return [name.decode().replace("-", "_") for name in match.group(1).split(b",") if name] if match else []


def _with_parent_folders(entries: list[Entry]) -> list[Entry]:
    present = {name for name, _, _ in entries}
    result: list[Entry] = []
    for name, mode, data in entries:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent not in present:
                present.add(parent)
                result.append((parent, stat.S_IFDIR | 0o755, b""))
        result.append((name, mode, data))
    return result


def write_initramfs(entries: list[Entry], path: Path) -> None:
    """A newc cpio archive, gzip-compressed; owner root, fixed times, so equal inputs give equal bytes."""
    with gzip.GzipFile(path, "wb", compresslevel=6, mtime=0) as out:
        for inode, (name, mode, data) in enumerate(entries, start=1):
            major = minor = 0
            if isinstance(data, tuple):
                major, minor = data
                payload = b""
            elif isinstance(data, str):
                payload = data.encode()
            else:
                payload = data
            _cpio_entry(out, name, mode, payload, inode, major, minor)
        _cpio_entry(out, "TRAILER!!!", 0, b"", 0, 0, 0)


def _cpio_entry(out, name: str, mode: int, payload: bytes, inode: int, major: int, minor: int) -> None:
    encoded = name.encode() + b"\0"
    fields = (inode, mode, 0, 0, 1 if not stat.S_ISDIR(mode) else 2, 0, len(payload), 0, 0, major, minor,
              len(encoded), 0)
    header = b"070701" + b"".join(f"{value:08x}".encode() for value in fields)
    out.write(header + encoded + _pad(len(header) + len(encoded)))
    out.write(payload + _pad(len(payload)))


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


if __name__ == "__main__":
    sys.exit(main())
