"""Whole-page cache for the public pages, in Redis, invalidated by a content version, bounded in memory.

Why: a page that renders in 10-20 ms on one of this machine's 2 cores cannot keep p95 under 50 ms at 20
concurrent visitors; replaying a stored page costs one Redis round trip and no Django at all (`PageCacheFront`).

What is stored, and what it may cost:
- Only canonical URLs. A view declares the query parameters it reads (`cached_public_page(query=...)`); a request
  with any other parameter, or one given twice, is rendered but never stored, so `?junk=<random>` cannot fill
  Redis. The key holds the known parameters sorted, so their order does not make a second copy.
- A memory bound that holds whatever a client sends (`SHOWCASE_PAGE_CACHE_MAX_MB`): every store runs one Lua
  script that forgets expired entries and evicts the oldest ones until the new entry fits. Known parameters with
  endless values (`?q=<random>`) therefore cost at most the bound. Redis itself gets no `maxmemory`: it also
  carries the Celery broker and the channel layer, whose data must never be evicted.
- Entries are data, not code: a JSON header line (content version, status, headers) and the body's bytes. Nothing
  read from Redis is unpickled, so whoever can write to Redis cannot run code in the web server.

Any save or delete of exhibit content bumps the version once the transaction commits (see `signals`), so every
process serves fresh pages at once; the timeout only bounds how long an entry may live. Pages carry nothing per
visitor (no session, no CSRF token), which is what makes sharing them safe. If Redis is down, pages are rendered as
if there were no cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from functools import wraps
from urllib.parse import parse_qsl, urlencode

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from showcase.core import metrics, shared_redis
from showcase.core.language import variant_of_scope

logger = logging.getLogger(__name__)

PUBLIC_MARK = "X-Page-Cache"
# What the store's bookkeeping costs per entry beyond its bytes (the key three times, a sorted-set and a hash member,
# Redis's own headers): an estimate on the high side, so the bound holds in Redis's own MEMORY USAGE.
ENTRY_OVERHEAD_BYTES = 400
# How long a request for a page that is being rendered waits for that render before rendering its own.
SHARED_RENDER_WAIT_S = 10.0


def redis_key(*parts: str) -> str:
    """Every Redis key the page cache reads or writes, built here and nowhere else, under this deployment's
    namespace (two sites on one Redis never share pages): `<namespace>page-cache:…`."""
    return shared_redis.key("page-cache", *parts)


def version_key() -> str:
    return redis_key("version")


def index_keys() -> list[str]:
    """The bookkeeping of the memory bound: entries by expiry time, each entry's size, and the total."""
    return [redis_key("index"), redis_key("sizes"), redis_key("total")]


def entry_key(variant: bytes) -> str:
    return redis_key("page", hashlib.sha1(variant).hexdigest())


def max_bytes() -> int:
    return int(getattr(settings, "SHOWCASE_PAGE_CACHE_MAX_MB", 32) * 1024 * 1024)


def timeout_s() -> int:
    return getattr(settings, "SHOWCASE_PAGE_CACHE_SECONDS", 300)


# KEYS: the entry, the index (sorted set: entry -> expiry ms), sizes (hash: entry -> bytes), the total (string).
# ARGV: the payload, its time to live in ms, now in ms, the bound in bytes, the per-entry overhead.
# Forgets entries that expired by themselves, then evicts the soonest-expiring (= oldest) until the new one fits.
STORE_SCRIPT = """
local entry, index, sizes, total_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local payload, ttl, now, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local total = tonumber(redis.call('GET', total_key) or '0')
local function forget(key)
  local size = tonumber(redis.call('HGET', sizes, key) or '0')
  redis.call('HDEL', sizes, key)
  redis.call('ZREM', index, key)
  redis.call('DEL', key)
  total = total - size
end
for _, key in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now)) do forget(key) end
forget(entry)
local size = string.len(payload) + 3 * string.len(entry) + tonumber(ARGV[5])
local stored = 0
if size <= budget then
  while total + size > budget do
    local oldest = redis.call('ZRANGE', index, 0, 0)[1]
    if not oldest then break end
    forget(oldest)
  end
  redis.call('SET', entry, payload, 'PX', ttl)
  redis.call('ZADD', index, now + ttl, entry)
  redis.call('HSET', sizes, entry, size)
  total = total + size
  stored = 1
end
if total < 0 then total = 0 end
redis.call('SET', total_key, total, 'PX', ttl)
redis.call('PEXPIRE', index, ttl)
redis.call('PEXPIRE', sizes, ttl)
return stored
"""


def encode_entry(
    *, version: int, status: int, headers: list[tuple[bytes, bytes]], body: bytes, view: str = ""
) -> bytes:
    """One JSON line (no newline inside: JSON escapes it), then the body as it is. `view` is the URL name of the
    view that rendered it, for the request metrics of replayed pages."""
    header = {"version": version, "status": status, "view": view,
              "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in headers]}  # fmt: skip
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + body


def decode_entry(data: bytes) -> tuple[int, int, list[tuple[bytes, bytes]], bytes, str]:
    """(version, status, headers, body, view) of a stored entry; ValueError for anything else."""
    line, separator, body = data.partition(b"\n")
    if not separator:
        raise ValueError("not a page cache entry")
    header = json.loads(line)
    headers = [(str(n).encode("latin-1"), str(v).encode("latin-1")) for n, v in header["headers"]]
    return int(header["version"]), int(header["status"]), headers, body, str(header.get("view", ""))


def _sync_client() -> redis.Redis:
    return shared_redis.client()


def content_version() -> int:
    client = _sync_client()
    client.set(version_key(), 1, nx=True)
    return int(client.get(version_key()) or 1)


def bump_content_version() -> None:
    try:
        _sync_client().incr(version_key())
    except Exception:  # a Redis outage must not fail an admin save; pages then expire by timeout
        logger.warning("could not bump the public page cache version", exc_info=True)


def canonical_query(query_string: str, allowed: frozenset[str]) -> str | None:
    """The query with its parameters sorted, or None when it holds an unknown or repeated parameter."""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    names = [name for name, _value in pairs]
    if len(set(names)) != len(names) or not set(names) <= allowed:
        return None
    return urlencode(sorted(pairs))


def cached_public_page(view: Callable[..., HttpResponse] | None = None, *, query: tuple[str, ...] = ()):
    """Mark a view's 200 answers to GET as public pages the front cache may store, when the URL is canonical:
    no query parameter but those in `query`, each at most once. Usable bare (`@cached_public_page`) or with the
    parameters the view reads (`@cached_public_page(query=("q", "page"))`)."""
    allowed = frozenset(query)

    def decorate(view_func: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view_func)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            response = view_func(request, *args, **kwargs)
            if (
                request.method in ("GET", "HEAD")
                and response.status_code == 200
                and not response.streaming
                and canonical_query(request.META.get("QUERY_STRING", ""), allowed) is not None
            ):
                response[PUBLIC_MARK] = "miss"
            return response

        return wrapper

    return decorate(view) if view is not None else decorate


# Never public pages: skip the Redis lookup for them.
PASS_THROUGH_PREFIXES = ("/admin/", "/healthz/", "/v1/", "/static/", "/media/", "/i18n/", "/ws/", "/metrics")


def _redis_cache() -> bool:
    return settings.CACHES["default"]["BACKEND"].endswith(".RedisCache")


def page_variant(scope) -> bytes:
    """What makes two requests the same page: scheme, Host, forwarded protocol, path and the query with its
    parameters sorted (the view decides at render time whether they are all known)."""
    headers = dict(scope.get("headers", []))
    query = scope.get("query_string", b"").decode("latin-1")
    return b"|".join(
        [
            scope.get("scheme", "http").encode(),
            headers.get(b"host", b""),
            headers.get(b"x-forwarded-proto", b""),
            scope["path"].encode(),
            urlencode(sorted(parse_qsl(query, keep_blank_values=True))).encode(),
            # An unprefixed path answers in the visitor's language (showcase.core.language): key by it.
            variant_of_scope(scope),
        ]
    )


class PageCacheFront:
    """ASGI layer in front of Django: serves a public page that Django rendered before, whole (status, every header
    the middlewares added, body), without entering Django at all.

    Why: Django's request cycle alone costs about 3 ms of this machine's CPU, so a page through Django tops out
    near 300 requests/s on one server process; replaying bytes from Redis costs a fraction of that.

    What it stores: only a 200 response to a GET that the view marked as a public page with a canonical URL
    (`cached_public_page`'s X-Page-Cache header) and that sets no cookie, within the memory bound. The key holds
    the scheme, the Host and the forwarded protocol as well as the path and query, so a request is replayed only a
    response that Django itself gave to that variant (a Host Django refuses, or an http request it would redirect,
    never gets a 200 stored). The language of a public page follows its path (i18n_patterns), so the path covers
    it. The entry records the content version it was rendered under; one MGET reads the page and the current
    version together, and a page from an older version is a miss. HEAD is answered from a stored GET, without the
    body. Misses for one page while it is being rendered wait for that render (`SHARED_RENDER_WAIT_S`) and get its
    answer if it is a public page. Anything else, or Redis unreachable, goes to Django unchanged. A replayed page
    says `X-Page-Cache: front`.
    """

    def __init__(self, app) -> None:
        self.app = app
        self._clients: dict[int, object] = {}
        self._scripts: dict[int, object] = {}
        self._redis_down = False
        # (page key, content version) -> the answer of the render in progress: a request that saw a newer version
        # than a render under way is not given that render's page.
        self._rendering: dict[tuple[str, int], asyncio.Future] = {}

    async def __call__(self, scope, receive, send) -> None:
        timeout = timeout_s()
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or timeout <= 0
            or scope["path"].startswith(PASS_THROUGH_PREFIXES)
            or not _redis_cache()
        ):
            await self.app(scope, receive, send)
            return
        page_key = entry_key(page_variant(scope))
        try:
            client = self._client()
            version, entry = await client.mget(version_key(), page_key)
        except Exception:
            if not self._redis_down:  # once per outage, not once per request
                logger.warning("front page cache unavailable; passing requests to Django", exc_info=True)
            self._redis_down = True
            await self.app(scope, receive, send)
            return
        self._redis_down = False
        if entry is not None and version is not None:
            try:
                stored_version, status, headers, body, view = decode_entry(entry)
            except (ValueError, KeyError, TypeError):
                logger.warning("ignoring a malformed page cache entry %s", page_key)
                stored_version = None
            if stored_version == int(version):
                metrics.page_cache_lookup("hit")
                scope["showcase.view"] = view or "page_cache"
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})
                return
        if scope["method"] != "GET":
            metrics.page_cache_lookup("miss")
            await self.app(scope, receive, send)
            return
        if version is None:  # the first page since Redis was emptied: start the version (a bump may come first)
            try:
                await client.set(version_key(), 1, nx=True)
                version = await client.get(version_key())
            except Exception:
                metrics.page_cache_lookup("miss")
                await self.app(scope, receive, send)
                return
        # One render per page at a time: a burst of misses for the same page (a cold page under load, every page
        # after a content save) waits for the first one's answer instead of queueing identical renders on Django's
        # one thread for synchronous views (50 of them at 50 connections made the p95 of /compare/ several seconds).
        in_progress = (page_key, int(version))
        rendering = self._rendering.get(in_progress)
        if rendering is not None:
            try:
                shared = await asyncio.wait_for(asyncio.shield(rendering), timeout=SHARED_RENDER_WAIT_S)
            except TimeoutError:
                shared = None
            if shared is not None:
                status, headers, body, view = shared
                metrics.page_cache_lookup("shared")
                scope["showcase.view"] = view or "page_cache"
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            metrics.page_cache_lookup("miss")
            await self.app(scope, receive, send)  # the first render's answer was not a public page: render our own
            return
        metrics.page_cache_lookup("miss")
        rendering = asyncio.get_running_loop().create_future()
        self._rendering[in_progress] = rendering
        try:
            await self._render_and_store(scope, receive, send, client=client, page_key=page_key,
                                         version=int(version), timeout=timeout, rendering=rendering)  # fmt: skip
        finally:
            if self._rendering.get(in_progress) is rendering:
                del self._rendering[in_progress]
            if not rendering.done():
                rendering.set_result(None)

    async def _render_and_store(self, scope, receive, send, *, client, page_key, version, timeout, rendering) -> None:
        start: dict | None = None
        chunks: list[bytes] = []

        async def capture(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            await send(message)  # the visitor first, the cache after
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False) and start is not None:
                    page = self._public_page(start, b"".join(chunks), scope.get("showcase.view", ""))
                    if page is not None and not rendering.done():
                        rendering.set_result(page)  # the requests waiting for this render get it now
                    if page is not None:
                        await self._store(client, page_key, version, page, timeout)

        await self.app(scope, receive, capture)

    @staticmethod
    def _public_page(start: dict, body: bytes, view: str) -> tuple[int, list, bytes, str] | None:
        """The answer as it may be replayed to anyone, or None when it is not a public page (see the class)."""
        headers = list(start.get("headers", []))
        names = {name.lower() for name, _value in headers}
        if start["status"] != 200 or PUBLIC_MARK.lower().encode() not in names or b"set-cookie" in names:
            return None
        headers = [(name, b"front" if name.lower() == b"x-page-cache" else value) for name, value in headers]
        return 200, headers, body, view

    async def _store(self, client, page_key: str, version: int, page: tuple, timeout: int) -> None:
        _status, headers, body, view = page
        payload = encode_entry(version=version, status=200, headers=headers, body=body, view=view)
        try:
            await self._script(client)(
                keys=[page_key, *index_keys()],
                args=[payload, timeout * 1000, int(time.time() * 1000), max_bytes(), ENTRY_OVERHEAD_BYTES],
            )
        except Exception:
            logger.warning("could not store a page in the front cache", exc_info=True)

    def _client(self):
        """One asyncio Redis client per event loop (Daphne runs one; tests may run several)."""
        loop_id = id(asyncio.get_running_loop())
        client = shared_redis.async_client()
        if self._clients.get(loop_id) is not client:
            self._clients = {loop_id: client}
            self._scripts = {loop_id: client.register_script(STORE_SCRIPT)}
        return client

    def _script(self, client):
        return self._scripts[id(asyncio.get_running_loop())]


def memory_used(client: redis.Redis) -> int:
    """What the page cache holds in Redis now, in bytes, by Redis's own MEMORY USAGE of each of its keys."""
    return sum(client.memory_usage(key) or 0 for key in client.scan_iter(match=redis_key("*"), count=1000))
