"""WebSocket routes of the whole site; each app contributes its own list."""

from demo_engine.routing import websocket_urlpatterns as chat_websocket_urlpatterns
from showcase.core.routing import websocket_urlpatterns as core_websocket_urlpatterns

websocket_urlpatterns = [*core_websocket_urlpatterns, *chat_websocket_urlpatterns]
