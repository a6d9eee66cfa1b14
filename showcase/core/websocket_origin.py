"""The WebSocket origin check: a socket is opened only by a page of this very site.

Browsers send cookies with a WebSocket handshake whatever page opens it, and cookies ignore ports: a page served
on another port of the same host (`http://127.0.0.1:9999`), or over plain http beside an https site, could open
`/ws/chat/` with a visitor's session and read their conversation. Channels' `AllowedHostsOriginValidator` compares
host names only, so this check compares scheme, host and port of the `Origin` header with the site's own origin
(the `Host` the browser connected to, and https when the socket is `wss` or a proxy says so through
`SECURE_PROXY_SSL_HEADER`). `CSRF_TRUSTED_ORIGINS` adds origins, as for forms behind a proxy. A missing or `null`
origin is refused: every browser sends one.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_tuple(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the scheme's default port filled in; None when it cannot be read."""
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return None
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port


def _site_scheme(scope: dict, headers: dict[bytes, bytes]) -> str:
    if scope.get("scheme") == "wss":
        return "https"
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, secure_value = proxy_header
        header = name.removeprefix("HTTP_").replace("_", "-").lower().encode()
        if headers.get(header, b"").decode("latin-1").split(",")[0].strip() == secure_value:
            return "https"
    return "http"


def origin_allowed(scope: dict) -> bool:
    """Whether the handshake in `scope` comes from a page of this site."""
    headers = {name.lower(): value for name, value in scope.get("headers", [])}
    raw_origin = headers.get(b"origin", b"").decode("latin-1").strip()
    host = headers.get(b"host", b"").decode("latin-1").strip()
    if not raw_origin or raw_origin == "null" or not host:
        return False
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    parsed = urlsplit(raw_origin)
    origin = _origin_tuple(parsed.scheme, parsed.netloc)
    if origin is None:
        return False
    if origin == _origin_tuple(_site_scheme(scope, headers), host):
        return True
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        trusted_parts = urlsplit(trusted)
        if origin == _origin_tuple(trusted_parts.scheme, trusted_parts.netloc):
            return True
    return False


class SameOriginValidator:
    """ASGI middleware for the WebSocket router: refuses (HTTP 403 at the handshake) any foreign origin."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.application(scope, receive, send)
