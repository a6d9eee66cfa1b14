"""One completion in flight, seen from the web process: the reply's Redis Stream read with redis.asyncio, turned
into OpenAI's response or server-sent events, and the reply stopped when the client goes away.

Cancellation: when a client disconnects, Django's ASGI handler cancels the task serving the request (the view
while it waits, or the streaming response's iteration); the CancelledError lands in our `await`, and `finally`
sets the reply's stop flag, which the worker polls every 100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async
from redis.exceptions import RedisError

from demo_engine import services as chat_services
from demo_engine.api import services, wire
from demo_engine.models import Message
from demo_engine.reply_follower import follow_reply
from demo_engine.reply_stream import ReplyRef

logger = logging.getLogger(__name__)

USAGE_WAIT_S = 15.0
# Tasks that record the usage of cancelled replies after their request is gone (kept referenced until done).
_background: set[asyncio.Task] = set()


class CompletionRun:
    """Follows one reply (`message_id`) of one API key from its stream, in order, until its `end` frame."""

    def __init__(self, *, api_key_id: int, reply: Message, model: str = wire.MODEL_ID) -> None:
        self.api_key_id = api_key_id
        self.model = model  # the model the client asked for, named in every chunk
        self.message_id = reply.id
        self.reply = ReplyRef.of(reply)
        self.completion_id = f"chatcmpl-{reply.conversation_id.hex}"
        self.created = int(time.time())
        self.text = ""
        self.ended = False
        self._frames = self._read_frames()

    @classmethod
    async def start(cls, *, api_key, completion: wire.CompletionRequest) -> CompletionRun:
        """Save the reply and queue its generation. A client that goes away meanwhile (Django cancels the view in
        the middle of the save) still has its reply stopped once it exists, instead of generated for nobody."""
        saving = asyncio.ensure_future(
            database_sync_to_async(services.api_completion_start)(api_key=api_key, completion=completion)
        )
        try:
            reply = await asyncio.shield(saving)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # a refused start (ApiError) has no reply to stop
                await cls(api_key_id=api_key.id, reply=await saving, model=completion.model).abandon()
            raise
        return cls(api_key_id=api_key.id, reply=reply, model=completion.model)

    async def _read_frames(self) -> AsyncIterator[dict]:
        """The reply's `delta` and `end` frames (the follower's queue positions are not OpenAI's business); a dead
        worker or a lost stream still ends with an `end`, whose saved text completes what the deltas missed."""
        async for frame in follow_reply(self.reply):
            if frame["type"] == "delta":
                self.text += frame["text"]
                yield frame
            elif frame["type"] == "end":
                saved = frame.pop("content", None)
                if saved and saved.startswith(self.text) and len(saved) > len(self.text):
                    missing = saved[len(self.text) :]
                    self.text = saved
                    yield {"type": "delta", "message_id": self.message_id, "text": missing}
                self.ended = True
                yield frame
                return

    async def next_frame(self) -> dict:
        return await anext(self._frames)

    async def finish(self) -> None:
        """After the `end` frame: count the reply's tokens in the key's usage, let go of Redis."""
        await self._close()
        await database_sync_to_async(services.api_usage_record_reply)(
            api_key_id=self.api_key_id, message_id=self.message_id
        )

    async def abandon(self) -> None:
        """The client went away (or we failed) before the end: stop the reply now, count its tokens later."""
        await self._close()
        if self.ended:
            return
        try:
            await database_sync_to_async(chat_services.reply_stop)(reply=self.reply)
        except RedisError:
            logger.warning("could not stop API reply %s: Redis unavailable", self.message_id)
        # A fresh context: the request's own (its thread-sensitive executor) is gone by the time this task runs.
        task = asyncio.get_running_loop().create_task(
            _record_usage_when_final(self.api_key_id, self.message_id), context=contextvars.Context()
        )
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await self._frames.aclose()

    # The two ways of answering -------------------------------------------------------------------------------

    async def first_output(self) -> dict:
        """The first frame worth answering with (text, or the end): until then, the HTTP status is still open."""
        return await self.next_frame()

    async def collect(self, first: dict) -> dict:
        """Read to the end; return the `end` frame (the text is in `self.text`)."""
        frame = first
        while frame["type"] != "end":
            frame = await self.next_frame()
        await self.finish()
        return frame

    async def server_sent_events(self, first: dict, *, include_usage: bool) -> AsyncIterator[bytes]:
        """`chat.completion.chunk` events, then `data: [DONE]`. Must run to its end or be closed."""
        ids = {"completion_id": self.completion_id, "created": self.created, "model": self.model}
        try:
            yield wire.sse_event(wire.chunk_object(**ids, delta={"role": "assistant", "content": ""},
                                                   include_usage=include_usage))  # fmt: skip
            frame = first
            while frame["type"] != "end":
                if frame["text"]:
                    yield wire.sse_event(wire.chunk_object(**ids, delta={"content": frame["text"]},
                                                           include_usage=include_usage))  # fmt: skip
                frame = await self.next_frame()
            await self.finish()
            if frame["status"] == "failed":
                # Headers are gone: OpenAI's clients raise on an `error` object inside the stream.
                yield wire.sse_event(wire.error_for_failed_reply(frame).body())
                return
            yield wire.sse_event(wire.chunk_object(**ids, delta={}, finish_reason=wire.finish_reason_for(frame),
                                                   include_usage=include_usage))  # fmt: skip
            if include_usage:
                yield wire.sse_event(wire.usage_chunk_object(**ids, usage=wire.usage_from_stats(frame["stats"])))
            yield wire.sse_event("[DONE]")
        finally:
            if not self.ended:
                await self.abandon()


async def _record_usage_when_final(api_key_id: int, message_id: int) -> None:
    """Wait (a little) for a stopped reply's end, then count its tokens."""
    try:
        deadline = time.monotonic() + USAGE_WAIT_S
        while time.monotonic() < deadline:
            status = await database_sync_to_async(
                lambda: Message.objects.filter(id=message_id).values_list("status", flat=True).first()
            )()
            if status is None or status in Message.FINAL_STATUSES:
                break
            await asyncio.sleep(0.25)
        await database_sync_to_async(services.api_usage_record_reply)(api_key_id=api_key_id, message_id=message_id)
    except Exception:  # nobody awaits this task: say what went wrong here
        logger.exception("could not record the usage of stopped API reply %s", message_id)
