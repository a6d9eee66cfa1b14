"""WebSocket routes of the whole site; each app contributes its own list."""

from demo_engine.routing import websocket_urlpatterns as chat_websocket_urlpatterns
from showcase.live.routing import websocket_urlpatterns as live_websocket_urlpatterns

websocket_urlpatterns = [*live_websocket_urlpatterns, *chat_websocket_urlpatterns]
