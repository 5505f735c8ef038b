"""HTTP and websockets on one ASGI server."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vmsite.settings")
# No persistent database connections in the web process (Django's advice for ASGI): each request
# runs on a thread of its own, and each thread's kept connection stayed open for a minute: under
# 200 users one web process (daphne then) held 88 and PostgreSQL's 100 ran out (bench/README.md, production.py).
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")

from django.core.asgi import get_asgi_application  # noqa: E402

from vmsite.bulk_io import prepare_web_process  # noqa: E402

prepare_web_process()

django_http = get_asgi_application()

from vmsite.private import start_private_process  # noqa: E402

start_private_process()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from api.transfer_auth import TokenSocketAuth  # noqa: E402
from events.consumers import KeepServerSend  # noqa: E402
from vmsite.origins import SiteOriginValidator  # noqa: E402
from vmsite.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_http) if settings.SERVE_STATIC else django_http,
        "websocket": SiteOriginValidator(
            KeepServerSend(AuthMiddlewareStack(TokenSocketAuth(URLRouter(websocket_urlpatterns))))
        ),
    }
)
