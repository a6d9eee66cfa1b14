"""Whole-page cache for the public exhibit pages, invalidated by a content version in Redis.

Why: a page that renders in 10-20 ms on one of this machine's 2 cores cannot keep p95 under 50 ms at 20
concurrent visitors; a cached page costs one or two Redis round trips. Any save or delete of exhibit
content bumps the version once the transaction commits (see `signals`), so every process serves fresh pages
at once; the timeout only bounds memory. Pages carry nothing per visitor (no session, no CSRF token), which
is what makes sharing them safe. If Redis is down, pages are rendered as if there were no cache.
"""

import asyncio
import hashlib
import logging
import pickle
from collections.abc import Callable
from functools import wraps

import redis.asyncio as aioredis
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.translation import get_language

from showcase.core import shared_redis
from showcase.core.language import variant_of_scope
from showcase.core.shared_redis import cache_key

logger = logging.getLogger(__name__)

VERSION_KEY = "exhibits:content-version"


def _site_tag() -> str:
    """Two sites on one Redis (a test run next to a booth, two test stacks) must not share pages. Read from the
    settings, not the connection: in an async request, touching `connection` builds a database wrapper."""
    db = settings.DATABASES["default"]
    return hashlib.sha1(f"{db.get('HOST')}:{db.get('PORT')}:{db['NAME']}".encode()).hexdigest()[:12]


def content_version() -> int:
    return int(cache.get_or_set(f"{VERSION_KEY}:{_site_tag()}", 1, timeout=None))


def bump_content_version() -> None:
    key = f"{VERSION_KEY}:{_site_tag()}"
    try:
        cache.add(key, 1, timeout=None)
        cache.incr(key)
    except Exception:  # a Redis outage must not fail an admin save; pages then expire by timeout
        logger.warning("could not bump the exhibit page cache version", exc_info=True)


def cached_public_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Serve a GET from the cache when the content has not changed since it was rendered."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        timeout = getattr(settings, "SHOWCASE_PAGE_CACHE_SECONDS", 300)
        if request.method not in ("GET", "HEAD") or timeout <= 0:
            return view(request, *args, **kwargs)
        try:
            path_hash = hashlib.sha1(request.get_full_path().encode()).hexdigest()
            key = f"exhibits:page:{_site_tag()}:{content_version()}:{get_language()}:{path_hash}"
            hit = cache.get(key)
        except Exception:
            logger.warning("page cache unavailable; rendering", exc_info=True)
            return view(request, *args, **kwargs)
        if hit is not None:
            content, content_type = hit
            response = HttpResponse(content, content_type=content_type)
            response["X-Page-Cache"] = "hit"
            return response
        response = view(request, *args, **kwargs)
        if response.status_code == 200 and not response.streaming:
            if hasattr(response, "render"):
                response.render()
            try:
                cache.set(key, (response.content, response["Content-Type"]), timeout=timeout)
            except Exception:
                logger.warning("could not store a page in the cache", exc_info=True)
            response["X-Page-Cache"] = "miss"
        return response

    return wrapper


# Never public pages: skip the Redis lookup for them.
PASS_THROUGH_PREFIXES = ("/admin/", "/healthz/", "/v1/", "/static/", "/media/", "/i18n/", "/ws/")


def _redis_cache() -> bool:
    return settings.CACHES["default"]["BACKEND"].endswith(".RedisCache")


class PageCacheFront:
    """ASGI layer in front of Django: serves a public page that Django rendered before, whole (status, every header
    the middlewares added, body), without entering Django at all.

    Why: Django's request cycle alone costs about 3 ms of this machine's CPU, so even a page from the cache above
    tops out near 300 requests/s on one server process; replaying bytes from Redis costs a fraction of that.

    What it stores: only a 200 response to a GET that the view marked as a public page (`cached_public_page`'s
    X-Page-Cache header) and that sets no cookie. The key holds the scheme, the Host and the forwarded protocol
    as well as the full path, so a request is replayed only a response that Django itself gave to that exact
    variant (a Host Django refuses, or an http request it would redirect, never gets a 200 stored). The
    language of a public page follows its path (i18n_patterns), so the path covers it. The entry records the
    content version it was rendered under; one MGET reads the page and the current version together, and a
    page from an older version is a miss. Anything else, or Redis unreachable, goes to Django unchanged. A
    replayed page says `X-Page-Cache: front` (Django's own cache says `hit`).
    """

    def __init__(self, app) -> None:
        self.app = app
        self._clients: dict[int, object] = {}
        self._redis_down = False

    async def __call__(self, scope, receive, send) -> None:
        timeout = getattr(settings, "SHOWCASE_PAGE_CACHE_SECONDS", 300)
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or timeout <= 0
            or scope["path"].startswith(PASS_THROUGH_PREFIXES)
            or not _redis_cache()
        ):
            await self.app(scope, receive, send)
            return
        page_key = self._page_key(scope)
        try:
            client = self._client()
            version, entry = await client.mget(self._version_key(), page_key)
        except Exception:
            if not self._redis_down:  # once per outage, not once per request
                logger.warning("front page cache unavailable; passing requests to Django", exc_info=True)
            self._redis_down = True
            await self.app(scope, receive, send)
            return
        self._redis_down = False
        if entry is not None and version is not None:
            stored_version, status, headers, body = pickle.loads(entry)
            if stored_version == int(version):
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self._render_and_store(scope, receive, send, client=client, page_key=page_key, version=version,
                                     timeout=timeout)  # fmt: skip

    async def _render_and_store(self, scope, receive, send, *, client, page_key, version, timeout) -> None:
        start: dict | None = None
        chunks: list[bytes] = []

        async def capture(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            await send(message)  # the visitor first, the cache after
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False) and start is not None and version is not None:
                    await self._store(client, page_key, int(version), start, b"".join(chunks), timeout)

        await self.app(scope, receive, capture)

    @staticmethod
    async def _store(client, page_key: str, version: int, start: dict, body: bytes, timeout: int) -> None:
        headers = list(start.get("headers", []))
        names = {name.lower() for name, _value in headers}
        if start["status"] != 200 or b"x-page-cache" not in names or b"set-cookie" in names:
            return
        headers = [(name, b"front" if name.lower() == b"x-page-cache" else value) for name, value in headers]
        try:
            await client.set(page_key, pickle.dumps((version, 200, headers, body)), ex=timeout)
        except Exception:
            logger.warning("could not store a page in the front cache", exc_info=True)

    @staticmethod
    def _page_key(scope) -> str:
        headers = dict(scope.get("headers", []))
        variant = b"|".join(
            [
                scope.get("scheme", "http").encode(),
                headers.get(b"host", b""),
                headers.get(b"x-forwarded-proto", b""),
                scope["path"].encode(),
                scope.get("query_string", b""),
                # An unprefixed path answers in the visitor's language (showcase.core.language): key by it.
                variant_of_scope(scope),
            ]
        )
        return shared_redis.key("exhibits", "front", _site_tag(), hashlib.sha1(variant).hexdigest())

    @staticmethod
    def _version_key() -> str:
        # The cache's key function without touching `cache`, which builds a backend per async context.
        return cache_key(f"{VERSION_KEY}:{_site_tag()}", settings.CACHES["default"].get("KEY_PREFIX", ""),
                         settings.CACHES["default"].get("VERSION", 1))  # fmt: skip

    def _client(self):
        """One asyncio Redis client per event loop (Daphne runs one; tests may run several)."""
        loop_id = id(asyncio.get_running_loop())
        client = self._clients.get(loop_id)
        if client is None:
            client = aioredis.Redis.from_url(settings.CACHES["default"]["LOCATION"], socket_timeout=2,
                                             socket_connect_timeout=1)  # fmt: skip
            self._clients = {loop_id: client}
        return client
