"""Following one reply to its end: the one way every client kind (the chat socket, the HTTP API) does it.

The reply's frames come from its Redis Stream, in order, from any offset. While the stream is quiet, once a second,
the watchdog (`services.reply_watch`) fails a reply whose worker has gone, reports a waiting reply's queue position,
and rebuilds the `end` frame of a reply that ended while Redis lost its stream. If the watchdog itself keeps failing
(the database is down), the follower still ends with an `end` frame after `WATCHDOG_GIVE_UP_S`: a client never waits
for ever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async

from demo_engine import reply_stream, services
from demo_engine.reply_stream import ReplyRef

logger = logging.getLogger(__name__)

WATCH_INTERVAL_S = 1.0
WATCHDOG_GIVE_UP_S = 15.0
UNAVAILABLE_REASON = "The site lost track of this reply (its database is unavailable). Please reload the page."


async def follow_reply(reply: ReplyRef, *, after_seq: int = 0) -> AsyncIterator[dict]:
    """The reply's frames after `after_seq`, then its `end` (always the last frame yielded), with `status` frames
    when a waiting reply's queue position changes. An `end` always goes through, whatever its seq: one written by
    the watchdog may carry a seq that a racing worker frame already used."""
    last_watch = time.monotonic()
    last_position: int | None = None
    failing_since: float | None = None
    text_seen: list[str] = []
    last_seq = after_seq
    async for frame in reply_stream.read_frames(reply, block_ms=int(WATCH_INTERVAL_S * 1000)):
        if frame is not None:
            if frame["type"] == "delta":
                text_seen.append(frame["text"])
            if frame["type"] == "end":
                yield frame
                return
            if frame["seq"] > after_seq:
                after_seq = frame["seq"]
                yield frame
            last_seq = max(last_seq, frame["seq"])
            continue
        if time.monotonic() - last_watch < WATCH_INTERVAL_S:
            continue
        last_watch = time.monotonic()
        try:
            watched = await database_sync_to_async(services.reply_watch)(reply=reply)
        except Exception:
            logger.warning("reply %s: the watchdog failed", reply.message_id, exc_info=True)
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since >= WATCHDOG_GIVE_UP_S:
                text = "".join(text_seen)
                yield {"type": "end", "message_id": reply.message_id, "seq": last_seq + 1, "status": "failed",
                       "reason": UNAVAILABLE_REASON, "code": "unavailable", "finish_reason": "", "stats": None,
                       "content": text, "length": len(text)}  # fmt: skip
                return
            continue
        failing_since = None
        if watched is None:
            continue
        if watched["type"] == "end":
            yield watched
            return
        if watched.get("queue_position") != last_position:
            last_position = watched.get("queue_position")
            yield watched
