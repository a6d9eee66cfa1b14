"""A reply's life in Redis, in one place: its keys, writing its frames, reading them from any offset, its stop flag,
its heartbeat, and the presence of the workers that write replies. Nothing else names these keys.

Each reply has a Redis Stream holding its frames in order (status, deltas, end). A follower reads it from any
offset, so a slow browser, a reload or a second tab never loses a batch: nothing is dropped the way a full
channels-redis channel drops messages. Beside it: a stop flag the worker polls, and a heartbeat the worker
refreshes while it owns the reply (its absence means the worker died).

Keys are named after the reply's id *and* its `stream_token` (a UUID a database reset never reuses), under this
deployment's namespace (`showcase.core.shared_redis`), e.g. `waic:3f2a9c1b7d4e:reply:6:9b1d…` and `…:stop`,
`…:heartbeat`. Once a reply has ended, its stop flag and heartbeat are deleted and its stream expires within two
minutes (its text is saved), so nothing a reply leaves behind can touch a later one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.exceptions import RedisError

from showcase.core import shared_redis

logger = logging.getLogger(__name__)

STREAM_TTL_S = 3600
# Once a reply has ended its text is in the database; the stream only serves a follower a moment behind. Keeping
# every finished stream for the full hour grew Redis 32% in a 6-minute soak (about 4.7 KB a reply).
FINISHED_STREAM_TTL_S = 120
HEARTBEAT_TTL_S = 6
HEARTBEAT_INTERVAL_S = 1.0
WORKER_PRESENCE_S = 5.0
WORKER_FIGURES_TTL_S = 30


@dataclass(frozen=True)
class ReplyRef:
    """What names a reply in Redis: its database id and its stream token."""

    message_id: int
    token: str

    @classmethod
    def of(cls, message) -> ReplyRef:
        return cls(message_id=message.id, token=message.stream_token.hex)


# Keys ------------------------------------------------------------------------------------------------------------


def stream_key(reply: ReplyRef) -> str:
    return shared_redis.key("reply", reply.message_id, reply.token)


def stop_key(reply: ReplyRef) -> str:
    return stream_key(reply) + ":stop"


def heartbeat_key(reply: ReplyRef) -> str:
    return stream_key(reply) + ":heartbeat"


def workers_key() -> str:
    return shared_redis.key("workers")


def worker_figures_key(worker_name: str) -> str:
    return shared_redis.key("worker", worker_name)


def encode_frame(frame: dict) -> dict[str, str]:
    return {"frame": json.dumps(frame, ensure_ascii=False)}


def decode_frame(fields: dict) -> dict:
    raw = fields.get(b"frame") or fields.get("frame")
    return json.loads(raw)


# Writes (worker, and the web process when it stops or fails a reply) ----------------------------------------------


def append(reply: ReplyRef, frame: dict) -> None:
    """Add a frame to the reply's stream. An `end` frame also clears the reply's stop flag and heartbeat and lets
    the stream expire soon."""
    key = stream_key(reply)
    pipe = shared_redis.client().pipeline(transaction=False)
    pipe.xadd(key, encode_frame(frame))
    if frame["type"] == "end":
        pipe.expire(key, FINISHED_STREAM_TTL_S)
        pipe.delete(stop_key(reply), heartbeat_key(reply))
    else:
        pipe.expire(key, STREAM_TTL_S)
    pipe.execute()


def stop_request(reply: ReplyRef) -> None:
    """Raise the reply's stop flag (the worker polls it between steps)."""
    shared_redis.client().set(stop_key(reply), 1, ex=STREAM_TTL_S)


def stop_requested(reply: ReplyRef) -> bool:
    return bool(shared_redis.client().exists(stop_key(reply)))


# Reads -----------------------------------------------------------------------------------------------------------


def text_so_far(reply: ReplyRef) -> tuple[str, int]:
    """The reply text delivered so far through its stream, and the last seq written."""
    text, last_seq = [], 0
    for _entry_id, fields in shared_redis.client().xrange(stream_key(reply)):
        frame = decode_frame(fields)
        last_seq = max(last_seq, frame["seq"])
        if frame["type"] == "delta":
            text.append(frame["text"])
    return "".join(text), last_seq


def has_end(reply: ReplyRef) -> bool:
    """Whether the reply's stream holds its `end` frame (it is the stream's last entry when it does)."""
    last = shared_redis.client().xrevrange(stream_key(reply), count=1)
    return bool(last) and decode_frame(last[0][1])["type"] == "end"


async def read_frames(reply: ReplyRef, *, block_ms: int = 1000) -> AsyncIterator[dict | None]:
    """The reply's frames in order, from its first, as they are written; `None` after each read, quiet or not, so
    the reader can look at the database now and then. Redis being briefly down is waited out, not raised.
    (The shared client reads with a 5 s socket timeout: keep `block_ms` well under it.)"""
    client = shared_redis.async_client()
    key = stream_key(reply)
    last_id = "0-0"
    while True:
        try:
            result = await client.xread({key: last_id}, block=block_ms, count=500)
        except RedisError as exc:
            logger.warning("reply %s: Redis unavailable (%s); retrying", reply.message_id, exc)
            await asyncio.sleep(1.0)
            result = []
        for _stream, entries in result or []:
            for entry_id, fields in entries:
                last_id = entry_id
                yield decode_frame(fields)
        yield None


# The worker's heartbeat ------------------------------------------------------------------------------------------


class Heartbeat:
    """Refreshes the reply's heartbeat key while a worker owns the reply; its absence means the worker died."""

    def __init__(self, reply: ReplyRef) -> None:
        self.key = heartbeat_key(reply)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{reply.message_id}", daemon=True)

    def _beat(self) -> None:
        shared_redis.client().set(self.key, 1, ex=HEARTBEAT_TTL_S)

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL_S):
            try:
                self._beat()
            except Exception as exc:  # Redis restarting: the next beat retries
                logger.warning("heartbeat failed: %s", exc)

    def __enter__(self) -> Heartbeat:
        # The first beat before anything else: a reply marked streaming without a heartbeat is failed by the
        # follower's once-a-second watchdog as "worker lost".
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with contextlib.suppress(RedisError):  # the key expires by itself
            shared_redis.client().delete(self.key)


def heartbeat_alive(reply: ReplyRef) -> bool:
    return bool(shared_redis.client().exists(heartbeat_key(reply)))


# Worker presence -------------------------------------------------------------------------------------------------


def live_worker_cutoff() -> float:
    """Workers seen after this time count as alive."""
    return time.time() - WORKER_PRESENCE_S


def worker_presence_publish(*, worker_name: str, figures: dict) -> None:
    """A worker says it is alive, with its live figures (tokens/s now, chats in flight, backend)."""
    now = time.time()
    pipe = shared_redis.client().pipeline(transaction=False)
    pipe.zadd(workers_key(), {worker_name: now})
    pipe.zremrangebyscore(workers_key(), "-inf", now - 3600)
    pipe.set(worker_figures_key(worker_name), json.dumps(figures), ex=WORKER_FIGURES_TTL_S)
    pipe.execute()


def worker_names_alive() -> list[str]:
    """This site's inference workers that reported in the last few seconds."""
    names = shared_redis.client().zrangebyscore(workers_key(), live_worker_cutoff(), "+inf")
    return [name.decode() for name in names]


def redis_restarted_recently() -> bool:
    """Whether Redis started too recently for workers to have reported again (its presence set starts empty)."""
    uptime_s = shared_redis.client().info("server").get("uptime_in_seconds", 0)
    return uptime_s < WORKER_PRESENCE_S


async def worker_figures_read() -> list[dict]:
    """The latest figures of this site's live workers (for the live panel; no database query)."""
    client = shared_redis.async_client()
    names = await client.zrangebyscore(workers_key(), live_worker_cutoff(), "+inf")
    raw = await client.mget([worker_figures_key(name.decode()) for name in names]) if names else []
    return [json.loads(item) for item in raw if item]


async def celery_queue_depth(queue: str) -> int:
    """Tasks waiting in one of this site's Celery queues (kombu keeps each as a list under the namespace)."""
    return int(await shared_redis.async_client().llen(shared_redis.redis_prefix() + queue))
