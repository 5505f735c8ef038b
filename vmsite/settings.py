"""vmsite settings: every deployment choice comes from the environment (see README)."""
from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

from vmsite.env import (env_bool, env_int, env_list, env_networks, env_path, env_str, parse_database_url,
                        secret_box_keys, secret_key)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("VMSITE_DATA_DIR", BASE_DIR / "data")

# Folders 0700 and files 0600, checked when every process starts (vmsite/private.py). Only the
# test settings turn the check off: the suite shares its data folder with pytest's own process.
DATA_DIR_MUST_BE_PRIVATE = True

SECRET_KEY = secret_key("SECRET_KEY", DATA_DIR)
# The key-encryption keys of secrets kept in the database (vmsite/secretbox.py). Every node of an
# installation needs the same ones: set SECRET_BOX_KEY_FILE on each.
SECRET_BOX_KEYS = secret_box_keys("SECRET_BOX_KEY", DATA_DIR)
# Host credentials leave the database only into a 0700 folder per process here, for as long as a
# connection opening (or a console tunnel) needs them (hosts/credentials.py). A tmpfs path is best.
CREDENTIALS_DIR = env_path("VMSITE_CREDENTIALS_DIR", DATA_DIR / "credentials")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# The site's public origins (scheme://host[:port]): pages of these may open websockets, here and on
# the console proxy (vmsite/origins.py). By default each literal ALLOWED_HOSTS name over http on
# VMSITE_PORT (and over https when HTTPS=true); behind a reverse proxy, list its public origin here
# or in CSRF_TRUSTED_ORIGINS.
VMSITE_PORT = env_int("VMSITE_PORT", 8000, minimum=1)
SITE_ORIGINS = env_list("SITE_ORIGINS", [
    *(f"http://{host}:{VMSITE_PORT}" for host in ALLOWED_HOSTS if host and not host.startswith((".", "*"))),
    *(f"https://{host}" for host in ALLOWED_HOSTS if host and not host.startswith((".", "*"))
      if env_bool("HTTPS", False)),
])

DATABASES = {
    "default": parse_database_url("DATABASE_URL", env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'vmsite.sqlite3'}"))
}
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "accounts",
    "operations",
    "hosts",
    "domains",
    "storage",
    "networking",
    "events",
    "listener",
    "metrics",
    "consoles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
    "tombstones",
    "backups",
    "inventory",
    "django_celery_beat",  # schedules kept in the database (backup jobs'); beat runs its DatabaseScheduler
    "vmsite",  # its management commands (doctor)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "vmsite.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "api.transfer_auth.TokenForTransfers",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.RequireSecondFactorForAdmins",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tombstones.views.TombstoneMiddleware",
]

ROOT_URLCONF = "vmsite.urls"
ASGI_APPLICATION = "vmsite.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "domains.context.live_styles",
                "accounts.context.access",
            ],
            "builtins": ["vmsite.units"],  # the binary_size filter on every page
        },
    }
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=60)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
# Production behind HTTPS: HTTPS=true sends cookies over HTTPS only, redirects plain HTTP, and
# sends HSTS. Behind a TLS-terminating proxy, also TRUST_PROXY_HTTPS_HEADER=true, and only if
# that proxy sets X-Forwarded-Proto itself (overwriting what clients send).
HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", HTTPS)  # set false if a subdomain has no HTTPS
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", HTTPS)
# The proxies in front (addresses or networks): only from them is X-Forwarded-For believed, and
# only it gives the client's address for lockouts and the audit log (accounts/addresses.py).
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES", [])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("TRUST_PROXY_HTTPS_HEADER", False) else None
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Sent on every answer (vmsite/middleware.py). No inline scripts anywhere; inline style
# attributes remain (progress bars), hence 'unsafe-inline' for styles only.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
                           "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")

# The REST API (api/): tokens or the browser's session (which then needs the CSRF token), the
# pages' access rules, JSON only.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.TokenAuthentication",
                                       "rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.Declared"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pages",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "vmsite API",
    "DESCRIPTION": "Hosts, VMs, operations, pools, volumes, networks and grants. Authenticate with "
                   "`Authorization: Bearer <token>` (make one on your account page). Actions answer 202 "
                   "with an operation id: GET /api/v1/operations/{id}/ for its state.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"SizeUnitEnum": ["MiB", "GiB", "TiB"],
                            "BootDeviceEnum": ["hd", "cdrom", "network", "fd"],
                            "MacvtapModeEnum": ["bridge", "private", "vepa", "passthrough"],
                            "NicModelEnum": "domains.choices.DEFAULT_NIC_MODELS",
                            "NewDiskFormatEnum": ["qcow2", "raw"], "PartitionTableEnum": ["gpt", "dos"]},
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", DATA_DIR / "static")
# Files Django writes (collectstatic into the data folder) are as private as everything else there.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
# Third-party front-end code comes from npm (package.json); only its built files are served.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/bootstrap", BASE_DIR / "node_modules" / "bootstrap" / "dist"),
    ("vendor/bootstrap-icons", BASE_DIR / "node_modules" / "bootstrap-icons" / "font"),
    ("vendor/uplot", BASE_DIR / "node_modules" / "uplot" / "dist"),
    ("vendor/novnc", BASE_DIR / "node_modules" / "@novnc" / "novnc"),
    ("vendor/xterm", BASE_DIR / "node_modules" / "@xterm" / "xterm"),
    ("vendor/xterm-addon-fit", BASE_DIR / "node_modules" / "@xterm" / "addon-fit" / "lib"),
]
# The ASGI server serves the collected static files itself unless a proxy in front does.
SERVE_STATIC = env_bool("SERVE_STATIC", True)
# Static files are public (the login page needs them). Collected into a folder of their own outside
# the private data folder, for a proxy to serve (deploy/), they are readable by everyone.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
                    "OPTIONS": {} if STATIC_ROOT.is_relative_to(DATA_DIR) else
                    {"file_permissions_mode": 0o644, "directory_permissions_mode": 0o755}},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Live messages to open pages go through one Redis pub/sub channel (events/publish.py, events/hub.py).
# Pub/sub ignores Redis database numbers, so the channel's name carries the database: two
# deployments (or test runs) on one Redis server with different databases never see each other's.
LIVE_CHANNEL = env_str("LIVE_CHANNEL", f"vmsite.live.{urlsplit(REDIS_URL).path.strip('/') or '0'}")

# The channel layer's Redis connections have no socket timeout: with one, redis-py sends each command
# under asyncio.wait_for, which on Python 3.11 loses a cancellation that meets the end of the send, and
# a socket's consumer closed at that moment kept reading its dead channel every 5 s (channels_redis's
# BZPOPMIN) for ever, and held the web server's graceful stop for its full 10 s. channels_redis bounds
# its own reads (5 s); TCP keepalive finds a Redis that vanished without closing the connection.
CHANNEL_LAYERS = {
    "default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": None, "socket_keepalive": True,
                                      "socket_keepalive_options": {socket.TCP_KEEPIDLE: 10, socket.TCP_KEEPINTVL: 5,
                                                                   socket.TCP_KEEPCNT: 3}}]}}
}

# Celery: JSON only, bounded in time; results live in Operation rows, not in a result backend.
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = "vmsite"
OPERATIONS_QUEUE = env_str("OPERATIONS_QUEUE", "vmsite")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SOFT_TIME_LIMIT = env_int("TASK_SOFT_TIME_LIMIT", 3600, minimum=1)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 60
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# When Redis goes away, a worker keeps trying to reconnect and never gives up (Celery's default
# is to exit after 100 tries): kombu waits 2, 4, 6 ... up to 30 s between tries, so it takes work
# again within about 30 s of Redis's return (tests/vmsite/test_redis_down.py measures it).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Seconds between full inventory reconciles of every host (the event listener keeps them live between).
RECONCILE_INTERVAL = env_int("RECONCILE_INTERVAL", 60, minimum=5)
# Beat writes each task's last run into the database as it sends it (not every 3 minutes), so that
# `manage.py doctor` and the System page can tell when beat last ran (vmsite/doctor.py).
CELERY_BEAT_SYNC_EVERY = 1
CELERY_BEAT_SCHEDULE = {
    "operations-sweep": {"task": "operations.sweep", "schedule": env_int("SWEEP_INTERVAL", 30, minimum=1)},
    "inventory-reconcile": {"task": "inventory.reconcile_all", "schedule": RECONCILE_INTERVAL},
}

# A running operation proves its worker alive this often; the sweep fails one silent for longer.
OPERATION_HEARTBEAT_INTERVAL = env_int("OPERATION_HEARTBEAT_INTERVAL", 10, minimum=1)
# How long a dead listener's hosts stay unwatched before another listener takes them (plus a 2 s
# round, listener/lease.py); every listener renews its leases every 2 s, so keep it well above that.
LISTENER_LEASE_SECONDS = env_int("LISTENER_LEASE_SECONDS", 9, minimum=4)
# Graphs: the listener reads every running VM's counters in one call per host this often.
GRAPH_SAMPLE_SECONDS = env_int("GRAPH_SAMPLE_SECONDS", 5, minimum=1)
# The dashboard's busiest-VMs part is fetched again this often (it reads the graphs' samples).
DASHBOARD_REFRESH_SECONDS = env_int("DASHBOARD_REFRESH_SECONDS", 10, minimum=1)
# Logins: after 5 failures for one user name (or 20 from one address), refused for this long.
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Administrators must set up a second factor (TOTP) before they can do anything else.
REQUIRE_TOTP_FOR_ADMINS = env_bool("REQUIRE_TOTP_FOR_ADMINS", False)
OPERATION_HEARTBEAT_TIMEOUT = env_int("OPERATION_HEARTBEAT_TIMEOUT", 60, minimum=2)
# A queued operation no worker has claimed this many seconds after its message was sent is sent
# again by the sweep (a Redis restart loses the queue); the claim lets only one delivery run it.
OPERATION_REQUEUE_AFTER = env_int("OPERATION_REQUEUE_AFTER", 300, minimum=10)

LIBVIRT_LOCAL_URI = "qemu:///system"
# Seconds a "shut down" waits for the guest to power off before it reports that it did not.
DOMAIN_SHUTDOWN_TIMEOUT = env_int("DOMAIN_SHUTDOWN_TIMEOUT", 120, minimum=1)
# Seconds a backup's health check waits for the temporary VM's guest agent to answer.
BACKUP_HEALTH_CHECK_TIMEOUT = env_int("BACKUP_HEALTH_CHECK_TIMEOUT", 300, minimum=5)

# The VNC console proxy (manage.py consoleproxy): where it listens, and the websocket URL pages use
# for it ("" means the page's own host name on CONSOLE_PROXY_PORT; behind a proxy, its public URL, or
# a path such as /websockify when the proxy carries it on the pages' own origin: deploy/nginx).
CONSOLE_PROXY_HOST = env_str("CONSOLE_PROXY_HOST", "127.0.0.1")
CONSOLE_PROXY_PORT = env_int("CONSOLE_PROXY_PORT", 6080, minimum=1)
CONSOLE_PROXY_URL = env_str("CONSOLE_PROXY_URL", "")
# Seconds between the checks that close an open console whose VM or user right went away.
CONSOLE_RECHECK_INTERVAL = env_int("CONSOLE_RECHECK_INTERVAL", 2, minimum=1)
CONSOLE_HEARTBEAT = env_int("CONSOLE_HEARTBEAT", 30, minimum=1)
# Seconds a console token (one connection to one VM's console) stays usable after it is issued.
CONSOLE_TOKEN_TTL = env_int("CONSOLE_TOKEN_TTL", 30, minimum=1)
# Seconds between two screenshots of one VM, whoever looks at it.
SCREENSHOT_INTERVAL = env_int("SCREENSHOT_INTERVAL", 5, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
