"""Storage transfer benchmark: uploads and downloads through vmsite against `virsh vol-upload` /
`vol-download` of the same file, to the same pool of the same host, in the same run.

What it measures (TESTING.md, Benchmarks), each round taking turns at which goes first:
* vmsite upload: the browser's protocol (tests/storage/transfer.py speaks what volume_upload.js
  speaks, masking its frames in C as a browser does): POST to start, then the file over the
  websocket to the web server (uvicorn), which creates the volume, streams it into libvirt and hashes it; timed from
  the POST to the "done" message with the SHA-256;
* with --chromium, also the upload page itself in headless Chromium, from the click on Upload to
  the SHA-256 on the page (reported, no target: see bench/README.md);
* virsh upload: `virsh vol-create-as` (raw, the file's size) then `virsh vol-upload`, the same work;
* vmsite download: GET /storage/volumes/<pk>/download/ streamed into a file by curl (a native
  client, as a browser is; the Python client of the tests costs more than the server);
* virsh download: `virsh vol-download` into a file.
Figures are MiB/s (median over the rounds) and vmsite / virsh; the target is >= 0.7; and the web
process's CPU seconds per GiB uploaded. BENCH_ASGI_SERVER=daphne or hypercorn runs that ASGI server
instead of uvicorn, BENCH_ASGI_OPTIONS adds options to uvicorn's (bench/inventory.py, asgi_argv).
How: one harness libvirt host (tests/harness, index --index on 127.0.0.N) reached over TCP, a
dir pool on it, uvicorn on a free loopback port, a throwaway SQLite database, a random file.
Everything it started is stopped by pid at the end. Needs root, libvirtd and qemu.
Run:  .venv/bin/python bench/storage.py [--mib 256 --rounds 5]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Playwright's sync API runs an event loop in this thread; the ORM calls between page actions are
# still plain synchronous code (as in tests/conftest.py).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

import libvirt  # noqa: E402

from bench.inventory import (asgi_server_name, asgi_server_process, django_env, emit, logged_in_session,  # noqa: E402
                             process_tree_cpu_seconds, progress, setup_django, superuser)
from tests.harness.libvirt_hosts import start_host  # noqa: E402
from virt.eventloop import ensure_event_loop  # noqa: E402

BENCH = "storage"
RATIO_TARGET = 0.7
MIB = 1024 * 1024


def random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(size // (4 * MIB)):
            data = os.urandom(4 * MIB)
            out.write(data)
            digest.update(data)
    return digest.hexdigest()


def virsh(uri: str, *args: str) -> None:
    subprocess.run(["virsh", "-q", "-c", uri, *args], check=True, capture_output=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while data := source.read(4 * MIB):
            digest.update(data)
    return digest.hexdigest()


@contextmanager
def chromium_page(base_url: str, *, enabled: bool):
    """Headless Chromium from Debian (TESTING.md), as the browser that uploads."""
    if not enabled:
        yield None
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            yield browser.new_context().new_page()
        finally:
            browser.close()


def chromium_upload(page, base_url: str, pool_id: int, source: Path, name: str) -> tuple[float, str]:
    """The upload page in Chromium: from the click on Upload to the SHA-256 on the page."""
    page.goto(f"{base_url}/storage/pools/{pool_id}/upload/")
    page.set_input_files("#id_file", str(source))
    page.fill("#id_name", name)
    started = time.perf_counter()
    page.click("#start-upload")
    # A selector, not a JavaScript predicate: the pages' Content-Security-Policy forbids eval.
    page.wait_for_selector("#upload-bar.bg-success, #upload-bar.bg-danger", timeout=300_000)
    seconds = time.perf_counter() - started
    if not page.inner_text("#upload-sha256"):
        raise RuntimeError(f"upload failed: {page.inner_text('#upload-status')} {page.inner_text('#upload-errors')}")
    return seconds, page.inner_text("#upload-sha256")


def run(args: argparse.Namespace, work: Path) -> None:
    from tests.storage.transfer import Browser, file_chunks
    from vmsite.bulk_io import keep_large_buffers

    keep_large_buffers()  # this process plays the browser: its buffers are the same size as the web server's

    size = args.mib * MIB
    source = work / "image.bin"
    expected = random_file(source, size)
    env = django_env(work / "data")
    setup_django(env)
    from hosts.models import Host
    from inventory.reconcile import host_reconcile
    from storage.models import StoragePool, Volume
    from virt.storage import build_pool, define_pool, start_pool
    from virt.xml.storage import PoolXML

    ensure_event_loop()
    remote = start_host(args.index, work / "harness")
    try:
        uri = remote.tcp_uri
        pool_name = f"bench-storage-{uuid.uuid4().hex[:6]}"
        conn = libvirt.open(uri)
        definition = PoolXML.new()
        definition.type, definition.name = "dir", pool_name
        definition.target_path = f"/var/lib/libvirt/images/{pool_name}"
        pool = conn.storagePoolLookupByUUIDString(define_pool(conn, definition))
        build_pool(pool)
        start_pool(pool)
        host = Host.objects.create(name=remote.hostname, transport="tcp", address=remote.address)
        host_reconcile(host=host)
        row = StoragePool.objects.get(host=host, name=pool_name)
        samples: dict[str, list[float]] = {"vmsite_upload": [], "virsh_upload": [], "vmsite_download": [],
                                           "virsh_download": [], "chromium_upload": []}
        server_cpu: list[float] = []  # the web process's CPU seconds per upload
        with asgi_server_process(env, Path(args.logs) if args.logs else work / "logs") as (base_url, server), \
                superuser() as (username, password), chromium_page(base_url, enabled=args.chromium) as page:
            browser = Browser(base_url, logged_in_session(base_url, username, password).cookies["sessionid"])
            if page is not None:
                page.context.add_cookies([{"name": "sessionid", "value": browser.http.cookies["sessionid"],
                                           "url": base_url}])
            for round_number in range(args.rounds):
                order = ("vmsite", "virsh") if round_number % 2 == 0 else ("virsh", "vmsite")
                for who in order:
                    name = f"{who}-{round_number}.img"
                    if who == "vmsite":
                        cpu_before = process_tree_cpu_seconds(server.pid)
                        started = time.perf_counter()
                        result = browser.upload(row.pk, file_chunks(source), size=size, name=name)
                        samples["vmsite_upload"].append(time.perf_counter() - started)
                        server_cpu.append(process_tree_cpu_seconds(server.pid) - cpu_before)
                        assert result.sha256 == expected, result.last_message
                        volume = Volume.objects.get(pool=row, name=name)
                        target = work / "vmsite-download.bin"
                        started = time.perf_counter()
                        subprocess.run(["curl", "-sSf", "-o", str(target), "-b",
                                        f"sessionid={browser.http.cookies['sessionid']}",
                                        f"{base_url}/storage/volumes/{volume.pk}/download/"], check=True)
                        samples["vmsite_download"].append(time.perf_counter() - started)
                        assert (sha256_of(target), target.stat().st_size) == (expected, size)
                        target.unlink()
                    else:
                        started = time.perf_counter()
                        virsh(uri, "vol-create-as", pool_name, name, str(size), "--format", "raw")
                        virsh(uri, "vol-upload", "--pool", pool_name, name, str(source))
                        samples["virsh_upload"].append(time.perf_counter() - started)
                        target = work / "virsh-download.bin"
                        started = time.perf_counter()
                        virsh(uri, "vol-download", "--pool", pool_name, name, str(target))
                        samples["virsh_download"].append(time.perf_counter() - started)
                        assert sha256_of(target) == expected
                        target.unlink()
                    pool.storageVolLookupByName(name).delete(0)
                if args.chromium:
                    seconds, shown = chromium_upload(page, base_url, row.pk, source, f"chromium-{round_number}.img")
                    assert shown == expected, shown
                    samples["chromium_upload"].append(seconds)
                    pool.storageVolLookupByName(f"chromium-{round_number}.img").delete(0)
                progress(f"round {round_number + 1} of {args.rounds} done")
        for direction in ("upload", "download"):
            ours = statistics.median(samples[f"vmsite_{direction}"])
            theirs = statistics.median(samples[f"virsh_{direction}"])
            ratio = theirs / ours  # throughput ratio: the same bytes, so the inverse of the times
            emit({"bench": BENCH, "operation": direction, "mib": args.mib, "rounds": args.rounds,
                  "vmsite_median_s": round(ours, 3), "vmsite_mib_s": round(args.mib / ours, 1),
                  "virsh_median_s": round(theirs, 3), "virsh_mib_s": round(args.mib / theirs, 1),
                  "ratio": round(ratio, 2), "target": RATIO_TARGET, "met": ratio >= RATIO_TARGET,
                  "server": asgi_server_name(), "load_average_1m": round(os.getloadavg()[0], 2),
                  **({"server_cpu_s_per_gib": round(statistics.median(server_cpu) / (args.mib / 1024), 2)}
                     if direction == "upload" else {})})
        if samples["chromium_upload"]:
            seconds = statistics.median(samples["chromium_upload"])
            emit({"bench": BENCH, "operation": "upload_from_chromium", "mib": args.mib, "rounds": args.rounds,
                  "median_s": round(seconds, 3), "mib_s": round(args.mib / seconds, 1)})
        pool.destroy()
        pool.delete(0)
        pool.undefine()
    finally:
        remote.stop()
        progress(f"stopped {remote.hostname}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="file size in MiB (a multiple of 4)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--index", type=int, default=70, help="harness host index (127.0.0.N)")
    parser.add_argument("--logs", help="keep the web server's log in this folder")
    parser.add_argument("--chromium", action="store_true", help="also time the upload page in headless Chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmsite-bench-storage-") as work:
        run(args, Path(work))


if __name__ == "__main__":
    main()
