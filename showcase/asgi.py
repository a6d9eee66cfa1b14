"""ASGI entry: HTTP goes to Django, WebSockets to Channels consumers, one server for both."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "showcase.settings")
# Django must be set up before the routing imports consumers and models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from showcase.core.gc_tuning import tune_for_server  # noqa: E402
from showcase.core.observe import ObservabilityMiddleware  # noqa: E402
from showcase.core.shared_redis import redis_prefix  # noqa: E402
from showcase.core.websocket_origin import SameOriginValidator  # noqa: E402
from showcase.exhibits.page_cache import PageCacheFront  # noqa: E402
from showcase.routing import websocket_urlpatterns  # noqa: E402

# Outermost: request ids, request and socket metrics, and /metrics (see ObservabilityMiddleware).
application = ObservabilityMiddleware(
    ProtocolTypeRouter(
        {
            # Public pages Django rendered before are replayed from Redis without entering Django (PageCacheFront).
            "http": PageCacheFront(django_asgi_app),
            # Only pages of this very site (scheme, host and port) may open a socket: see SameOriginValidator.
            "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
# The deployment's Redis namespace, read from the database now, before the event loop runs.
redis_prefix()
tune_for_server()
