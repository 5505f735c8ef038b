#!/usr/bin/env bash
# Installs vmsite for production on Debian 12, from the checkout this script is in:
#   sudo VMSITE_URL=https://vmsite.example.org deploy/install.sh
# a `vmsite` user, a virtualenv, a PostgreSQL role and database, vmsite's own Redis with a
# password, systemd units for every process of the Procfile, an nginx site with TLS (the
# certificate given in TLS_CERT/TLS_KEY, or a self-signed one for a first try), migrations,
# static files and the first administrator. Safe to run again: it keeps the passwords and
# certificate it made, and changes only what differs. README, "Production", says what it does.
#
# Settings (environment; all optional but VMSITE_URL on the first run):
#   VMSITE_URL        the public address, https://name[:port]
#   TLS_CERT TLS_KEY  certificate (full chain) and key files, PEM; copied to $ETC_DIR/tls
#   DATABASE_URL      an existing database; else a role and database $DB_NAME on the local PostgreSQL
#   REDIS_URL         an existing Redis; else redis-server@vmsite on 127.0.0.1:$REDIS_PORT, with a password
#   VMSITE_ADMIN_USER VMSITE_ADMIN_PASSWORD   the first administrator (password generated and shown if unset)
#   START=no          write and prepare everything, start nothing (no systemd, or a test)
# and where things go: APP_DIR VENV DATA_DIR STATIC_ROOT ETC_DIR SYSTEMD_DIR NGINX_DIR REDIS_CONF,
# ports HTTP_PORT WEB_PORT CONSOLE_PORT REDIS_PORT (defaults below).
# Arguments: the steps to run (default all, in order; see STEPS at the end).
set -euo pipefail
umask 022
shopt -u patsub_replacement 2>/dev/null || true  # bash 5.2: an & in a value stays an &

APP_DIR="${APP_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
DEPLOY="$APP_DIR/deploy"
SERVICE_USER=vmsite
VENV="${VENV:-/usr/local/lib/vmsite/venv}"
DATA_DIR="${DATA_DIR:-/var/lib/vmsite}"
STATIC_ROOT="${STATIC_ROOT:-/var/www/vmsite/static}"
ETC_DIR="${ETC_DIR:-/etc/vmsite}"
ENV_FILE="$ETC_DIR/vmsite.env"      # written by this script
LOCAL_ENV_FILE="$ETC_DIR/local.env"  # the admin's own settings: made once, never changed here
SYSTEMD_DIR="${SYSTEMD_DIR:-/etc/systemd/system}"
NGINX_DIR="${NGINX_DIR:-/etc/nginx}"
REDIS_CONF="${REDIS_CONF:-/etc/redis/redis-vmsite.conf}"
HTTP_PORT="${HTTP_PORT:-80}"
WEB_PORT="${WEB_PORT:-8000}"
CONSOLE_PORT="${CONSOLE_PORT:-6080}"
REDIS_PORT="${REDIS_PORT:-6380}"
DB_NAME="${DB_NAME:-vmsite}"
START="${START:-yes}"
PYTHON=/usr/bin/python3  # Debian's: the service user must be able to run it

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'deploy/install.sh: %s\n' "$*" >&2; exit 1; }
with_systemd() { [ "$START" = yes ] && [ -d /run/systemd/system ]; }
previous() { [ -f "$ENV_FILE" ] && sed -n "s/^$1=//p" "$ENV_FILE" | tail -n1; true; }  # from the last run
new_secret() { openssl rand -hex 24; }
# shellcheck source=../scripts/python_venv.sh
source "$APP_DIR/scripts/python_venv.sh"

render() {  # render TEMPLATE DEST: the template with every @NAME@ replaced by $NAME
    local text; text="$(cat "$1")"
    local name
    for name in $(grep -o '@[A-Z_]*@' "$1" | sort -u | tr -d @); do
        [ -n "${!name:-}" ] || die "$1 needs $name"
        text="${text//@$name@/${!name}}"
    done
    printf '%s\n' "$text" > "$2.tmp" && mv "$2.tmp" "$2"
}

public_address() {
    VMSITE_URL="${VMSITE_URL:-$(previous VMSITE_URL)}"
    [ -n "$VMSITE_URL" ] || die "set VMSITE_URL to the public address, as https://vmsite.example.org"
    [[ "$VMSITE_URL" =~ ^https://([a-zA-Z0-9.-]+)(:([0-9]+))?/?$ ]] \
        || die "VMSITE_URL=$VMSITE_URL: want https://name or https://name:port (a DNS name, no path)"
    SERVER_NAME="${BASH_REMATCH[1]}"
    HTTPS_PORT="${BASH_REMATCH[3]:-443}"
    PUBLIC_ORIGIN="https://$SERVER_NAME$([ "$HTTPS_PORT" = 443 ] || echo ":$HTTPS_PORT")"
}

system_packages() {
    local wanted=(python3-venv python3-dev gcc pkg-config libvirt-dev libvirt-daemon-system polkitd nginx openssl
                  qemu-utils genisoimage openssh-client)
    # vmsite's own Redis and database, unless given (now, or on the run that made the settings file).
    [ -n "${REDIS_URL:-}" ] || [ "$(previous REDIS_OWN)" = no ] || wanted+=(redis-server)
    [ -n "${DATABASE_URL:-}" ] || [ "$(previous DATABASE_OWN)" = no ] || wanted+=(postgresql)
    [ -d "$APP_DIR/node_modules" ] || { command -v npm >/dev/null || wanted+=(npm); }
    local missing=() package
    for package in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "Installing Debian packages: ${missing[*]}"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

service_user() {
    if ! getent passwd "$SERVICE_USER" >/dev/null; then
        say "Creating the user $SERVICE_USER"
        useradd --system --user-group --home-dir "$DATA_DIR" --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
    # Its home is the data folder (ssh and libvirt's client keep their files there). usermod refuses
    # while the user has processes: then it is said, and the next run (services stopped) mends it.
    if [ "$(getent passwd "$SERVICE_USER" | cut -d: -f6)" != "$DATA_DIR" ]; then
        usermod -d "$DATA_DIR" "$SERVICE_USER" \
            || echo "note: $SERVICE_USER's home is not $DATA_DIR; stop vmsite.target and run this again"
    fi
    # The local libvirtd lets the libvirt group manage it (polkit's rule, or the socket's group).
    if getent group libvirt >/dev/null && ! id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx libvirt; then
        usermod -a -G libvirt "$SERVICE_USER"
    fi
}

folders() {
    install -d -m 0700 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR"
    install -d -m 0755 "$(dirname "$STATIC_ROOT")"
    install -d -m 0755 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATIC_ROOT"
    install -d -m 0750 -g "$SERVICE_USER" "$ETC_DIR"
    install -d -m 0700 "$ETC_DIR/tls"
}

virtualenv() {
    # The runtime part of requirements.txt (the test packages follow "# Tests"), once per change.
    local wanted; wanted="$(sed '/^# Tests/,$d' "$APP_DIR/requirements.txt")"
    python_venv "$VENV" "$PYTHON" "$wanted"
    if [ ! -d "$APP_DIR/node_modules" ]; then
        say "Front-end packages from npm"
        (cd "$APP_DIR" && npm ci --no-audit --no-fund --loglevel error)
    fi
    # Compiled once here: the service user cannot write into the code's folder.
    local packages=("$APP_DIR"/*/__init__.py)
    "$VENV/bin/python" -m compileall -q "${packages[@]%/__init__.py}" >/dev/null || true
}

own_redis() {
    REDIS_URL="${REDIS_URL:-$(previous REDIS_URL)}"
    if [ -n "$REDIS_URL" ] && [ "$(previous REDIS_OWN)" != yes ]; then
        REDIS_OWN=no
        return
    fi
    REDIS_OWN=yes
    REDIS_PASSWORD="$(sed -n 's/^requirepass //p' "$REDIS_CONF" 2>/dev/null || true)"
    REDIS_PASSWORD="${REDIS_PASSWORD:-$(new_secret)}"
    say "Redis for vmsite: $REDIS_CONF (127.0.0.1:$REDIS_PORT, with a password)"
    install -d -m 0755 "$(dirname "$REDIS_CONF")"
    local before; before="$(cat "$REDIS_CONF" 2>/dev/null || true)"
    render "$DEPLOY/redis/vmsite.conf" "$REDIS_CONF"
    chmod 0640 "$REDIS_CONF"
    ! getent group redis >/dev/null || chgrp redis "$REDIS_CONF"
    REDIS_URL="redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT/0"
    if with_systemd; then
        systemctl enable -q --now redis-server@vmsite
        # Restarted only for a new configuration (open pages and consoles lose their sockets).
        [ "$before" = "$(cat "$REDIS_CONF")" ] || systemctl restart redis-server@vmsite
    fi
}

database() {
    DATABASE_URL="${DATABASE_URL:-$(previous DATABASE_URL)}"
    if [ -n "$DATABASE_URL" ] && [ "$(previous DATABASE_OWN)" != yes ]; then
        DATABASE_OWN=no
        return
    fi
    DATABASE_OWN=yes
    local password; password="$(previous DATABASE_URL | sed -n 's|^postgres://[^:]*:\([^@]*\)@.*|\1|p')"
    password="${password:-$(new_secret)}"
    if with_systemd; then systemctl enable -q --now postgresql; fi
    say "PostgreSQL: role and database $DB_NAME"
    # The names are vmsite's own ([a-z0-9_]) and the password hex: nothing here needs quoting.
    [[ "$DB_NAME" =~ ^[a-z_][a-z0-9_]*$ ]] || die "DB_NAME=$DB_NAME: lower-case letters, digits and _ only"
    (cd / && runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d postgres) <<SQL
SELECT 'CREATE ROLE $DB_NAME LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_NAME')\gexec
ALTER ROLE $DB_NAME LOGIN PASSWORD '$password';
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_NAME' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME')\gexec
SQL
    DATABASE_URL="postgres://$DB_NAME:$password@127.0.0.1:5432/$DB_NAME"
}

environment_file() {
    say "Settings: $ENV_FILE, and yours in $LOCAL_ENV_FILE"
    cat > "$ENV_FILE.tmp" <<EOF
# vmsite's settings, read by every unit (EnvironmentFile=), written by deploy/install.sh, which
# keeps the passwords in it when it runs again and rewrites the rest: put your own settings, or
# other values for these, in $LOCAL_ENV_FILE (read after this file). One KEY=value a line,
# no quotes. The settings and what they do: README, "Environment variables" and "Production".
DJANGO_SETTINGS_MODULE=vmsite.settings
VMSITE_URL=$VMSITE_URL
VMSITE_DATA_DIR=$DATA_DIR
DATABASE_URL=$DATABASE_URL
DATABASE_OWN=$DATABASE_OWN
REDIS_URL=$REDIS_URL
REDIS_OWN=$REDIS_OWN
# The public origin: the only host name served, the only page origin whose sockets are accepted.
ALLOWED_HOSTS=$SERVER_NAME
SITE_ORIGINS=$PUBLIC_ORIGIN
CSRF_TRUSTED_ORIGINS=$PUBLIC_ORIGIN
# HTTPS ends at nginx on this machine: it sets X-Forwarded-Proto and X-Forwarded-For itself.
HTTPS=true
TRUST_PROXY_HTTPS_HEADER=true
TRUSTED_PROXIES=127.0.0.1,::1
# nginx serves the static files from here; the web process does not.
SERVE_STATIC=false
STATIC_ROOT=$STATIC_ROOT
# Where the processes listen, on loopback only (nginx is the way in), and the console proxy's
# address as pages see it: a path of the site's own origin.
VMSITE_PORT=$WEB_PORT
CONSOLE_PROXY_HOST=127.0.0.1
CONSOLE_PROXY_PORT=$CONSOLE_PORT
CONSOLE_PROXY_URL=/websockify
WORKER_CONCURRENCY=4
EOF
    chmod 0640 "$ENV_FILE.tmp"
    chgrp "$SERVICE_USER" "$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    if [ ! -e "$LOCAL_ENV_FILE" ]; then
        install -m 0640 -g "$SERVICE_USER" /dev/null "$LOCAL_ENV_FILE"
        cat > "$LOCAL_ENV_FILE" <<EOF
# Your settings for vmsite, read after $ENV_FILE (a value here wins), one KEY=value a line;
# deploy/install.sh never changes this file. Then: systemctl restart vmsite.target. For example:
# REQUIRE_TOTP_FOR_ADMINS=true
# WORKER_CONCURRENCY=8
EOF
    fi
}

certificate() {
    TLS_CERT_FILE="$ETC_DIR/tls/vmsite.crt"
    TLS_KEY_FILE="$ETC_DIR/tls/vmsite.key"
    if [ -n "${TLS_CERT:-}" ] || [ -n "${TLS_KEY:-}" ]; then
        [ -r "${TLS_CERT:-}" ] && [ -r "${TLS_KEY:-}" ] || die "TLS_CERT and TLS_KEY must both name readable PEM files"
        say "TLS: the given certificate $TLS_CERT"
        install -m 0644 "$TLS_CERT" "$TLS_CERT_FILE"
        install -m 0600 "$TLS_KEY" "$TLS_KEY_FILE"
    elif [ ! -s "$TLS_CERT_FILE" ] || [ ! -s "$TLS_KEY_FILE" ]; then
        say "TLS: a self-signed certificate for $SERVER_NAME (browsers will warn: give TLS_CERT and TLS_KEY)"
        openssl req -x509 -newkey rsa:3072 -sha256 -days 825 -nodes -subj "/CN=$SERVER_NAME" \
            -addext "subjectAltName=DNS:$SERVER_NAME" -keyout "$TLS_KEY_FILE" -out "$TLS_CERT_FILE" 2>/dev/null
        chmod 0600 "$TLS_KEY_FILE"
        chmod 0644 "$TLS_CERT_FILE"
    fi
}

units() {
    say "systemd units into $SYSTEMD_DIR"
    install -d -m 0755 "$SYSTEMD_DIR/vmsite-.service.d"
    local unit
    for unit in "$DEPLOY"/systemd/*.service "$DEPLOY"/systemd/*.target; do
        render "$unit" "$SYSTEMD_DIR/$(basename "$unit")"
    done
    render "$DEPLOY/systemd/vmsite-.service.d/common.conf" "$SYSTEMD_DIR/vmsite-.service.d/common.conf"
    if with_systemd; then systemctl daemon-reload; fi
}

nginx_site() {
    say "nginx site: $NGINX_DIR/sites-available/vmsite"
    install -d -m 0755 "$NGINX_DIR/sites-available" "$NGINX_DIR/sites-enabled"
    TLS_CERT="$TLS_CERT_FILE" TLS_KEY="$TLS_KEY_FILE" render "$DEPLOY/nginx/vmsite.conf" "$NGINX_DIR/sites-available/vmsite"
    ln -sfn ../sites-available/vmsite "$NGINX_DIR/sites-enabled/vmsite"
}

as_service_user() {  # a command as the service user, with the settings the units get
    (cd "$APP_DIR" && set -a && . "$ENV_FILE" && . "$LOCAL_ENV_FILE" && set +a &&
     exec runuser -u "$SERVICE_USER" -- "$@")
}

django() {
    say "Database migrations, static files, first administrator"
    # The manage.py commands in one process (each start of Django costs a second or more): the data
    # folder made private first, migrations, static files, the first administrator, this machine's
    # libvirt as a host, and Django's deployment checks, which fail the install on a warning.
    as_service_user "$VENV/bin/python" manage.py shell --no-imports -c "
from django.core.management import call_command
call_command('private_data_dir')
call_command('migrate', interactive=False, verbosity=0)
call_command('collectstatic', interactive=False, verbosity=0)
call_command('ensure_admin')
call_command('host_register_local')
call_command('check', deploy=True, fail_level='WARNING')
"
}

local_libvirt() {
    # Only a warning: an installation may manage remote hosts alone.
    local error
    if ! error="$(as_service_user "$VENV/bin/python" -c \
            'import libvirt; libvirt.registerErrorHandler(lambda *a: None, None); libvirt.open("qemu:///system").close()' 2>&1)"; then
        printf '\033[1mwarning:\033[0m %s cannot manage the local libvirt (qemu:///system):\n  %s\n' \
            "$SERVICE_USER" "$(echo "$error" | tail -n1)"
        echo "  It must be in the libvirt group (it is), and libvirtd must let that group in: polkitd running"
        echo "  (Debian's rule /usr/share/polkit-1/rules.d/60-libvirt.rules), or in /etc/libvirt/libvirtd.conf"
        echo "  unix_sock_group = \"libvirt\", unix_sock_rw_perms = \"0770\", auth_unix_rw = \"none\". See README, Production."
    fi
}

start() {
    if ! with_systemd; then
        say "Not started (START=$START, or systemd is not running): README.md, Production, says what runs"
        return
    fi
    say "Starting vmsite and reloading nginx"
    systemctl enable -q vmsite.target vmsite-web vmsite-worker vmsite-beat vmsite-listener vmsite-consoles
    systemctl restart vmsite.target
    nginx -t -q && systemctl reload-or-restart nginx
    echo "vmsite is on $PUBLIC_ORIGIN/"
}

# `deploy/install.sh` runs every step; `deploy/install.sh virtualenv` (say) only the ones named.
STEPS=(public_address system_packages service_user folders virtualenv own_redis database environment_file
       certificate units nginx_site django local_libvirt start)
[ "$(id -u)" = 0 ] || die "run as root (it creates a user, a database and system services)"
for step in "${@:-${STEPS[@]}}"; do
    [[ " ${STEPS[*]} " == *" $step "* ]] || die "no step $step; the steps: ${STEPS[*]}"
    "$step"
done
