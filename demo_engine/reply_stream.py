"""The Redis keys a reply travels through, shared by the worker (writes) and the socket consumer (reads).

Each reply has a Redis Stream, `chat:reply:<id>`, holding its frames in order (status, deltas, end). A consumer
reads it from any offset, so a slow browser, a reload or a second tab never loses a batch: nothing is
dropped the way a full channels-redis channel drops messages. Beside it: a stop flag the worker polls, and a
heartbeat the worker refreshes while it owns the reply (its absence means the worker died).
Workers also keep a presence entry and their live figures under `chat:workers`.
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

STREAM_TTL_S = 3600
# Once a reply has ended its text is in the database; the stream only serves a follower a moment behind. Keeping
# every finished stream for the full hour grew Redis 32% in a 6-minute soak (about 4.7 KB a reply).
FINISHED_STREAM_TTL_S = 120
HEARTBEAT_TTL_S = 6
WORKER_PRESENCE_S = 5.0
WORKERS_KEY = "chat:workers"


def stream_key(message_id: int) -> str:
    return f"chat:reply:{message_id}"


def stop_key(message_id: int) -> str:
    return f"chat:stop:{message_id}"


def heartbeat_key(message_id: int) -> str:
    return f"chat:heartbeat:{message_id}"


def worker_figures_key(worker_name: str) -> str:
    return f"chat:worker:{worker_name}"


def encode_frame(frame: dict) -> dict[str, str]:
    return {"frame": json.dumps(frame, ensure_ascii=False)}


def decode_frame(fields: dict) -> dict:
    raw = fields.get(b"frame") or fields.get("frame")
    return json.loads(raw)


def redis_url() -> str:
    return settings.REDIS_URL


def live_worker_cutoff() -> float:
    """Workers seen after this time count as alive."""
    return time.time() - WORKER_PRESENCE_S


async def read_frames(client: aioredis.Redis, message_id: int, *, block_ms: int = 1000) -> AsyncIterator[dict | None]:
    """The reply's frames in order, from its first, as they are written; `None` after each read, quiet or not, so
    the reader can look at the database now and then. Redis being briefly down is waited out, not raised.
    (redis-py 8 reads with a 5 s socket timeout: keep `block_ms` well under it.)"""
    key = stream_key(message_id)
    last_id = "0-0"
    while True:
        try:
            result = await client.xread({key: last_id}, block=block_ms, count=500)
        except RedisError as exc:
            logger.warning("reply %s: Redis unavailable (%s); retrying", message_id, exc)
            await asyncio.sleep(1.0)
            result = []
        for _stream, entries in result or []:
            for entry_id, fields in entries:
                last_id = entry_id
                yield decode_frame(fields)
        yield None
