"""Reads about the running site: is each part it depends on answering?"""

from typing import TypedDict

import redis
from django.db import connection

from showcase.celery import app as celery_app
from showcase.core import shared_redis


class PartStatus(TypedDict):
    ok: bool
    detail: str


def database_status() -> PartStatus:
    """The database answers a trivial query."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down", and the page must say why
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}".strip()[:200]}
    finally:
        connection.close()
    return {"ok": True, "detail": connection.vendor}


def redis_status() -> PartStatus:
    """Redis answers PING."""
    try:
        shared_redis.client().ping()
    except redis.RedisError as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:200]}
    return {"ok": True, "detail": "PONG"}


def worker_status(*, timeout_s: float = 1.0) -> PartStatus:
    """At least one Celery worker answers a broadcast ping within `timeout_s`."""
    try:
        replies = celery_app.control.ping(timeout=timeout_s, limit=1)
    except Exception as exc:  # broker down: kombu raises its own connection errors
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:200]}
    if not replies:
        return {"ok": False, "detail": "no Celery worker answered a ping"}
    names = sorted(name for reply in replies for name in reply)
    return {"ok": True, "detail": ", ".join(names)}


def readiness() -> dict[str, PartStatus]:
    """Each part the site needs, by name. The worker is only asked when Redis (its broker) answers."""
    parts: dict[str, PartStatus] = {"database": database_status(), "redis": redis_status()}
    if parts["redis"]["ok"]:
        parts["worker"] = worker_status()
    else:
        parts["worker"] = {"ok": False, "detail": "not checked: Redis, the broker, is down"}
    return parts
