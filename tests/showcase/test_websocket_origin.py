"""The socket origin check: scheme, host and port must be the site's own (or a trusted origin)."""

import pytest

from showcase.core.websocket_origin import origin_allowed


def scope(origin: str | None, host: str = "127.0.0.1:8765", scheme: str = "ws", extra=()) -> dict:
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin is not None else [])
    return {"type": "websocket", "scheme": scheme, "headers": headers + list(extra)}


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:8765", True),
        ("HTTP://127.0.0.1:8765", True),
        ("http://127.0.0.1:9999", False),  # another port of the same host: cookies would go along
        ("http://localhost:8765", False),  # another name for it
        ("https://127.0.0.1:8765", False),  # another scheme
        ("http://127.0.0.1", False),  # port 80
        ("http://evil.example", False),
        ("null", False),
        ("", False),
        (None, False),
    ],
)
def test_only_the_sites_own_origin_opens_a_socket(origin, allowed):
    """A page of the site itself may open a socket; another port, name, scheme, site, or no origin may not."""
    assert origin_allowed(scope(origin)) is allowed


def test_default_ports_match_an_origin_without_one():
    """`https://booth.example` is the origin of a site served on 443 over wss."""
    assert origin_allowed(scope("https://localhost", host="localhost", scheme="wss"))
    assert not origin_allowed(scope("http://localhost", host="localhost", scheme="wss"))


def test_behind_an_https_proxy_the_forwarded_scheme_counts(settings):
    """Behind a TLS proxy (SECURE_PROXY_SSL_HEADER), the page's https origin is the site's own."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    forwarded = [(b"x-forwarded-proto", b"https")]
    assert origin_allowed(scope("https://localhost", host="localhost", extra=forwarded))
    assert not origin_allowed(scope("http://localhost", host="localhost", extra=forwarded))


def test_trusted_origins_and_allowed_hosts(settings):
    """CSRF_TRUSTED_ORIGINS adds an origin; a Host outside ALLOWED_HOSTS is refused whatever the origin."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://booth.example"]
    assert origin_allowed(scope("https://booth.example", host="localhost:8000"))
    assert not origin_allowed(scope("http://evil.example:80", host="evil.example"))
