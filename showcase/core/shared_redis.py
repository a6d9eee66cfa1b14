"""The site's way to Redis: this deployment's key namespace and the shared clients. Every other module asks here.

One Redis may serve several sites (a second checkout on a laptop, staging beside production, a test run beside a
booth), and a database reset leaves Redis's keys behind while integer ids start again. So every key the site
writes lives under `redis_prefix()`: `SHOWCASE_REDIS_PREFIX` when set, else `waic:<site id>:`, where the site id is
created with the database (`SiteIdentity`, made by its migration) and so changes when the database is reset.
Celery (kombu's `global_keyprefix`, see `showcase.celery`), the channel layer (`NamespacedRedisChannelLayer`) and
Django's cache (`cache_key`) use the same prefix.

Clients: one synchronous client per process (redis-py's pool is thread-safe) and one asyncio client per event loop
(an asyncio connection belongs to the loop that opened it).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import redis
import redis.asyncio as aioredis
from channels_redis.core import RedisChannelLayer
from django.conf import settings

# Reads block for at most 1 s (reply streams): 5 s leaves room, and a dead server is noticed within it.
SOCKET_TIMEOUT_S = 5

_lock = threading.Lock()
_prefix: str | None = None
_sync_clients: dict[str, redis.Redis] = {}
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, aioredis.Redis]] = (
    weakref.WeakKeyDictionary()
)


def redis_prefix() -> str:
    """This deployment's namespace in Redis, e.g. `waic:3f2a9c1b7d4e:`; read once per process."""
    global _prefix
    if _prefix is None:
        with _lock:
            if _prefix is None:
                _prefix = _resolve_prefix()
    return _prefix


def _resolve_prefix() -> str:
    configured = getattr(settings, "SHOWCASE_REDIS_PREFIX", "")
    if configured:
        return configured if configured.endswith(":") else configured + ":"
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _prefix_from_database()
    # First use from async code (the ASGI server resolves it at start-up; tests may not): Django forbids a query
    # on the event loop's thread, so ask from another thread, once per process.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_prefix_from_database_in_thread).result()


def _prefix_from_database() -> str:
    from showcase.core.models import SiteIdentity

    identity = SiteIdentity.objects.order_by("id").first() or SiteIdentity.objects.create()
    return f"waic:{identity.site_id.hex[:12]}:"


def _prefix_from_database_in_thread() -> str:
    from django.db import connection

    try:
        return _prefix_from_database()
    finally:
        connection.close()


def forget_prefix() -> None:
    """Tests only: read the prefix again on next use (after switching databases or settings)."""
    global _prefix
    with _lock:
        _prefix = None


def key(*parts: object) -> str:
    """A key of this deployment: `key("reply", 6, token)` → `waic:3f2a9c1b7d4e:reply:6:<token>`."""
    return redis_prefix() + ":".join(str(part) for part in parts)


def client() -> redis.Redis:
    """The process's synchronous client."""
    url = settings.REDIS_URL
    existing = _sync_clients.get(url)
    if existing is None:
        with _lock:
            existing = _sync_clients.get(url)
            if existing is None:
                existing = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, health_check_interval=10)
                _sync_clients[url] = existing
    return existing


def async_client() -> aioredis.Redis:
    """The running event loop's asyncio client (never closed by callers: it is shared)."""
    url = settings.REDIS_URL
    clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    existing = clients.get(url)
    if existing is None:
        existing = aioredis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S, health_check_interval=10
        )
        clients[url] = existing
    return existing


def cache_key(key: str, key_prefix: str, version: int) -> str:
    """Django's cache keys (`CACHES["default"]["KEY_FUNCTION"]`), under this deployment's namespace."""
    return f"{redis_prefix()}cache:{version}:{key}"


class NamespacedRedisChannelLayer(RedisChannelLayer):
    """The Channels layer with its groups and channels under this deployment's namespace: a live update of one site
    never reaches another site's pages."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["prefix"] = redis_prefix() + "asgi"
        super().__init__(*args, **kwargs)
