#!/usr/bin/env bash
# Everything `make run` and `make test` need, on a fresh Debian 12 machine as root. Safe to re-run:
# each step checks first and does nothing when its work is already done.
#   scripts/setup.sh run   system packages, daemons, venv, npm, migrate, static, admin user, local host
#   scripts/setup.sh test  the same set-up without touching the dashboard's own database, and the
#                          tests' real guest OS
#   scripts/setup.sh fast  what `make test-fast` needs: system and Python packages, no daemons
set -euo pipefail
MODE="${1:-run}"
cd "$(dirname "$0")/.."
# Debian's own Python (the python3-venv and python3-dev packages below are for it), not whichever
# python3 comes first on the PATH: a pyenv build without --enable-optimizations ran the suite's
# Python at about half the speed (README, "Test suite").
PYTHON="${PYTHON:-$( [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)}"
VENV=.venv
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
# shellcheck source=python_venv.sh
source scripts/python_venv.sh

system_packages() {
    local wanted=(python3-venv python3-dev gcc pkg-config libvirt-dev libvirt-daemon-system qemu-system-x86
                  qemu-utils redis-server genisoimage dnsmasq-base tini)
    [ "$MODE" = test ] && wanted+=(chromium chromium-headless-shell openssh-server openssh-client lvm2 parted nginx libnss3-tools postgresql
                                   sasl2-bin libsasl2-modules libsasl2-modules-db polkitd dbus-daemon dbus-bin b3sum libnbd-bin)
    # Node.js may come from elsewhere (NodeSource ships npm inside nodejs); only add it when absent.
    command -v node >/dev/null || wanted+=(nodejs)
    command -v npm >/dev/null || wanted+=(npm)
    local missing=()
    for package in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "Installing system packages: ${missing[*]}"
        [ "$(id -u)" = 0 ] || { echo "Run as root to install system packages: ${missing[*]}" >&2; exit 1; }
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

start_redis() {
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        say "Starting Redis on 127.0.0.1:6379"
        mkdir -p /var/lib/redis /var/log/redis
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile /var/log/redis/vmsite.log
        for _ in $(seq 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.1; done
    fi
}

start_postgresql() {
    # The production stack's test (tests/deploy) makes a database of its own on the machine's PostgreSQL.
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        say "Starting PostgreSQL"
        if [ -d /run/systemd/system ]; then
            systemctl start postgresql
        else
            pg_ctlcluster "$(ls /etc/postgresql | sort -V | tail -n1)" main start
        fi
        for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.1; done
    fi
}

start_libvirtd() {
    if ! virsh -c qemu:///system version >/dev/null 2>&1; then
        say "Starting libvirtd"
        if [ -d /run/systemd/system ]; then
            systemctl start virtlogd libvirtd
        else
            pgrep -x virtlogd >/dev/null || virtlogd -d
            setsid scripts/libvirtd_supervise.sh </dev/null >/dev/null 2>&1 &
        fi
        for _ in $(seq 100); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    # KVM when the device is there; libvirt's qemu user must be able to open it.
    if [ -e /dev/kvm ]; then chgrp kvm /dev/kvm 2>/dev/null && chmod 660 /dev/kvm 2>/dev/null || true; fi
}

# A clone's .venv links to a virtualenv in the shared cache, one per requirements.txt and Python, so
# that a new clone of the same code does not install the same packages again (40 s of the set-up).
# A checkout whose .venv is a folder of its own (an older set-up), or that cannot write the cache
# (not root), keeps its .venv folder.
VENV_CACHE=/var/cache/vmsite
KEPT_SHARED_VENVS=3

python_packages() {
    local wanted; wanted="$(cat requirements.txt)"
    if venv_of_its_own; then
        python_venv "$VENV" "$PYTHON" "$wanted"
        return
    fi
    local key; key="$(printf '%s\n%s' "$wanted" "$(readlink -f "$(command -v "$PYTHON")") $("$PYTHON" --version)" \
                      | sha256sum | cut -c1-16)"
    local shared="$VENV_CACHE/venv-$key"
    python_venv "$shared" "$PYTHON" "$wanted"
    touch "$shared/.vmsite-used"
    ln -sfn "$shared" "$VENV"
    prune_shared_venvs
}

venv_of_its_own() {  # the two cases above
    { [ -d "$VENV" ] && [ ! -L "$VENV" ]; } || ! cache_writable
}

cache_writable() {
    mkdir -p "$VENV_CACHE" 2>/dev/null && [ -w "$VENV_CACHE" ]
}

prune_shared_venvs() {  # all but the newest few, and only those no set-up used for a day
    local used stale
    for used in $(ls -t "$VENV_CACHE"/venv-*/.vmsite-used 2>/dev/null | tail -n +$((KEPT_SHARED_VENVS + 1))); do
        [ -n "$(find "$used" -mmin +1440)" ] || continue
        stale="$(dirname "$used")"
        (flock -n 9 && rm -rf "$stale") 9>"$stale.lock" || true
    done
}

# Front-end packages: a copy of the cache's node_modules for this package-lock.json (30 MB, a fraction
# of a second) where there is one; npm ci (4 s) into the clone, and into the cache, where there is not.
npm_packages() {
    local stamp=node_modules/.vmsite-package-lock lock; lock="$(sha256sum < package-lock.json)"
    [ "$(cat "$stamp" 2>/dev/null)" = "$lock" ] && return
    local cached; cached="$VENV_CACHE/node_modules-$(cut -c1-16 <<< "$lock")"
    if [ -f "$cached/.vmsite-package-lock" ]; then
        rm -rf node_modules && cp -a "$cached" node_modules
        return
    fi
    say "Installing front-end packages from npm"
    npm ci --no-audit --no-fund --loglevel error
    echo "$lock" > "$stamp"
    if cache_writable; then
        local partial; partial="$(mktemp -d "$cached.partial-XXXXXX")"
        cp -a node_modules/. "$partial/" && mv -T "$partial" "$cached" 2>/dev/null || rm -rf "$partial"
    fi
}

test_guest() {
    # The tests' tiny real guest OS (scripts/test_guest/build.py): built once into
    # /var/cache/vmsite, again only when its inputs change; quick when it is there.
    say "Test guest: $("$PYTHON" scripts/test_guest/build.py)"
}

deployment_venv() {
    # tests/deploy/test_production.py runs the stack as deploy/ installs it, as the vmsite user, who
    # cannot run this .venv's Python: deploy/install.sh builds the deployment's virtualenv (Debian's
    # python3, the runtime packages) into /var/cache/vmsite, again only when requirements.txt changes.
    VENV=/var/cache/vmsite/deploy-venv bash deploy/install.sh virtualenv
}

BYTECODE_JOBS=()
test_bytecode() {
    # Each pytest-xdist worker collects the whole suite, and on a new clone each would rewrite every
    # test module's asserts and compile vmsite's modules itself: 5 s of CPU per worker, 2.3 s once
    # pytest's and Python's caches hold them. Two collections of half the suite each write those
    # caches first, in the background while the rest of the set-up runs (waited for at the end).
    local folders=(tests/*/) half
    half=$(( ${#folders[@]} / 2 ))
    "$VENV/bin/pytest" --collect-only -q -p no:cacheprovider "${folders[@]:0:half}" >/dev/null 2>&1 &
    BYTECODE_JOBS+=($!)
    "$VENV/bin/pytest" --collect-only -q -p no:cacheprovider "${folders[@]:half}" tests/*.py >/dev/null 2>&1 &
    BYTECODE_JOBS+=($!)
}

dashboard_database() {
    "$VENV/bin/python" manage.py private_data_dir  # made 0700, or mended from an older install
    "$VENV/bin/python" manage.py migrate --noinput -v0
    "$VENV/bin/python" manage.py collectstatic --noinput -v0
    "$VENV/bin/python" manage.py ensure_admin
    "$VENV/bin/python" manage.py host_register_local
}

system_packages
if [ "$MODE" = fast ]; then python_packages; exit 0; fi
start_redis
start_libvirtd
[ "$MODE" = test ] && start_postgresql
python_packages
[ "$MODE" = test ] && test_bytecode
npm_packages
[ "$MODE" = run ] && dashboard_database
[ "$MODE" = test ] && test_guest
[ "$MODE" = test ] && deployment_venv
# Only test_bytecode's collections (their failures show in the run itself): a bare `wait` would also
# wait for the libvirtd that start_libvirtd may have started in the background, which never ends.
for job in "${BYTECODE_JOBS[@]}"; do wait "$job" || true; done
exit 0
