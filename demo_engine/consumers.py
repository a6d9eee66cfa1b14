"""`/ws/chat/`: the visitor's chat socket. It validates, rate-limits, saves, enqueues, and follows the reply's
Redis Stream back to the browser. It never runs the model, and `receive` never waits for a generation: the
reply is followed by a separate asyncio task of this connection.

Frames are documented in the README ("The chat socket") and typed in `demo_engine.protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time

import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from demo_engine import reply_stream, selectors, services
from demo_engine.models import Conversation, Message
from demo_engine.protocol import error_frame

logger = logging.getLogger(__name__)

# A frame larger than this is refused before it is parsed (a question is at most a few thousand characters).
MAX_FRAME_CHARS = 16_000
WATCH_INTERVAL_S = 1.0


class FrameError(Exception):
    """A frame the client got wrong: answered with an error frame, never a traceback."""

    def __init__(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def sampling_from_options(options: object) -> services.SamplingChoice:
    """The reply's sampling from the client's optional `options`; a missing seed gets a random one."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise FrameError("bad_frame", "'options' must be an object.")
    seed = options.get("seed", random.randrange(2**31))
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise FrameError("bad_frame", "'options.seed' must be a whole number ≥ 0.")
    temperature = options.get("temperature", settings.CHAT_TEMPERATURE)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
        raise FrameError("bad_frame", "'options.temperature' must be a number from 0 to 2.")
    max_new_tokens = options.get("max_new_tokens", settings.CHAT_MAX_NEW_TOKENS)
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
        raise FrameError("bad_frame", "'options.max_new_tokens' must be a whole number ≥ 1.")
    # Capped, not refused: a client asking for more simply gets the site's maximum.
    max_new_tokens = min(max_new_tokens, settings.CHAT_MAX_NEW_TOKENS)
    grounded = options.get("grounded") is True  # the booth assistant (the chat page asks for it), else the plain model
    return {"seed": seed, "temperature": float(temperature), "max_new_tokens": max_new_tokens, "grounded": grounded}


class ChatConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.redis = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
        self.follow_task: asyncio.Task | None = None
        self.following: int | None = None
        session = self.scope["session"]
        if not session.session_key:
            await database_sync_to_async(session.save)()
        self.session_key: str = session.session_key
        self.conversation: Conversation = await database_sync_to_async(services.conversation_for_session)(
            session_key=self.session_key, conversation_id=session.get("conversation_id")
        )
        await self._remember_conversation()
        await self.accept()
        await self._send_hello()

    async def disconnect(self, code: int) -> None:
        # The reply goes on without us: a reload picks it up from its stream.
        if self.follow_task is not None:
            self.follow_task.cancel()
        await self.redis.aclose()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            content = self._parse(text_data, bytes_data)
            handler = {
                "send": self.on_send,
                "stop": self.on_stop,
                "regenerate": self.on_regenerate,
                "new_conversation": self.on_new_conversation,
                "resume": self.on_resume,
                "ping": self.on_ping,
            }.get(content["type"])
            if handler is None:
                raise FrameError("unknown_type", f"Unknown frame type {content['type'][:40]!r}.")
            await handler(content)
        except FrameError as exc:
            await self.send_json(error_frame(exc.code, exc.message, retry_after=exc.retry_after))
        except RedisError as exc:
            logger.warning("chat frame failed, Redis unavailable: %s", exc)
            await self.send_json(error_frame("unavailable", "The chat is briefly unavailable. Try again shortly."))

    @staticmethod
    def _parse(text_data: str | None, bytes_data: bytes | None) -> dict:
        if text_data is None:
            raise FrameError("bad_frame", "Binary frames are not accepted: send JSON text.")
        if len(text_data) > MAX_FRAME_CHARS:
            raise FrameError("frame_too_large", f"Frames are limited to {MAX_FRAME_CHARS} characters.")
        try:
            content = json.loads(text_data)
        except ValueError:
            raise FrameError("bad_frame", "Frames must be JSON objects.") from None
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            raise FrameError("bad_frame", "Frames must be JSON objects with a string 'type'.")
        return content

    # Client frames -----------------------------------------------------------------------------------------

    async def on_ping(self, content: dict) -> None:
        await self.send_json({"type": "pong"})

    async def on_send(self, content: dict) -> None:
        text = content.get("text")
        if not isinstance(text, str) or not text.strip():
            raise FrameError("bad_frame", "'text' must be a non-empty string.")
        text = text.strip()
        if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
            raise FrameError(
                "too_long", f"Messages are limited to {settings.CHAT_MAX_MESSAGE_CHARS} characters ({len(text)} sent)."
            )
        sampling = sampling_from_options(content.get("options"))
        await self._check_can_start()
        question, reply, position = await database_sync_to_async(self._send_sync)(text, sampling)
        await self.send_json({"type": "message", "message": selectors.message_payload(question)})
        await self._announce_reply(reply, position)

    async def on_regenerate(self, content: dict) -> None:
        sampling = sampling_from_options(content.get("options"))
        await self._check_can_start()
        previous, reply, position = await database_sync_to_async(self._regenerate_sync)(sampling)
        await self._announce_reply(reply, position, replaces=previous.id if previous else None)

    async def on_stop(self, content: dict) -> None:
        reply = await database_sync_to_async(selectors.reply_in_flight)(conversation=self.conversation)
        if reply is None:
            raise FrameError("nothing_to_stop", "No reply is being written.")
        await database_sync_to_async(services.reply_stop)(message_id=reply.id)

    async def on_new_conversation(self, content: dict) -> None:
        self.conversation = await database_sync_to_async(services.conversation_start)(session_key=self.session_key)
        await self._remember_conversation()
        if self.follow_task is not None:
            self.follow_task.cancel()
        await self._send_hello()

    async def on_resume(self, content: dict) -> None:
        message_id, after_seq = content.get("message_id"), content.get("after_seq", 0)
        if not isinstance(message_id, int) or not isinstance(after_seq, int) or after_seq < 0:
            raise FrameError("bad_frame", "'resume' needs an integer 'message_id' and 'after_seq' ≥ 0.")
        exists = await database_sync_to_async(
            Message.objects.filter(id=message_id, conversation=self.conversation, role=Message.Role.ASSISTANT).exists
        )()
        if not exists:
            raise FrameError("not_found", "No such reply in this conversation.")
        self._follow(message_id, after_seq)

    # Helpers -----------------------------------------------------------------------------------------------

    async def _check_can_start(self) -> None:
        retry_after = await self._rate_limited()
        if retry_after is not None:
            raise FrameError(
                "rate_limited", f"Too many messages: try again in {retry_after} s.", retry_after=retry_after
            )

    async def _rate_limited(self) -> int | None:
        """Seconds to wait when this session sent too many messages this minute (a Redis counter per minute)."""
        now = time.time()
        key = f"chat:rate:{self.session_key}:{int(now // 60)}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 61)
        count, _ = await pipe.execute()
        if count > settings.CHAT_RATE_LIMIT_PER_MINUTE:
            return max(1, 60 - int(now % 60))
        return None

    def _guard_start(self) -> None:
        if selectors.reply_in_flight(conversation=self.conversation) is not None:
            raise FrameError("reply_in_progress", "A reply is still being written: wait for it, or stop it.")
        if selectors.queued_reply_count() >= settings.CHAT_MAX_QUEUED:
            raise FrameError("busy", "The demo is busy right now. Please try again in a few seconds.")

    def _dispatch_sync(self, reply: Message) -> int:
        """Enqueue the reply, or fail it at once when no worker is running. Returns its queue position."""
        if not services.workers_may_be_alive():
            services.reply_finish(message_id=reply.id, status=Message.Status.FAILED, content="", seq=1,
                                  reason="The model is unavailable right now: no worker is running.",
                                  code="no_worker")  # fmt: skip
            reply.refresh_from_db()
            return 0
        services.reply_enqueue(reply=reply)
        return selectors.queue_position(reply=reply)

    def _send_sync(self, text: str, sampling: services.SamplingChoice) -> tuple[Message, Message, int]:
        self._guard_start()
        question, reply = services.chat_message_send(conversation=self.conversation, text=text, sampling=sampling)
        return question, reply, self._dispatch_sync(reply)

    def _regenerate_sync(self, sampling: services.SamplingChoice) -> tuple[Message | None, Message, int]:
        self._guard_start()
        if not self.conversation.messages.filter(role=Message.Role.USER).exists():
            raise FrameError("nothing_to_regenerate", "There is no question to answer again.")
        previous, reply = services.reply_regenerate(conversation=self.conversation, sampling=sampling)
        return previous, reply, self._dispatch_sync(reply)

    async def _announce_reply(self, reply: Message, position: int, replaces: int | None = None) -> None:
        await self.send_json(
            {
                "type": "message",
                "message": selectors.message_payload(reply),
                "queue_position": position,
                "replaces": replaces,
            }  # fmt: skip
        )
        self._follow(reply.id, after_seq=0)

    async def _remember_conversation(self) -> None:
        session = self.scope["session"]
        if session.get("conversation_id") != str(self.conversation.id):
            session["conversation_id"] = str(self.conversation.id)
            await database_sync_to_async(session.save)()

    async def _send_hello(self) -> None:
        messages = await database_sync_to_async(selectors.conversation_messages)(conversation=self.conversation)
        await self.send_json(
            {
                "type": "hello",
                "conversation_id": str(self.conversation.id),
                "messages": [selectors.message_payload(message) for message in messages],
                "limits": selectors.chat_limits(),
            }
        )
        for message in messages:
            if message.status in selectors.IN_FLIGHT:
                self._follow(message.id, after_seq=0)

    def _follow(self, message_id: int, after_seq: int) -> None:
        if self.follow_task is not None:
            self.follow_task.cancel()
        self.following = message_id
        self.follow_task = asyncio.create_task(self._follow_stream(message_id, after_seq))

    async def _follow_stream(self, message_id: int, after_seq: int) -> None:
        """Send the reply's frames after `after_seq`, in order, until its `end` frame."""
        last_watch = time.monotonic()
        last_position: int | None = None
        with contextlib.suppress(asyncio.CancelledError):
            frames = reply_stream.read_frames(self.redis, message_id, block_ms=int(WATCH_INTERVAL_S * 1000))
            async for frame in frames:
                if frame is not None:
                    # An `end` frame always goes through: one written by the watchdog may carry a seq that a
                    # racing worker frame already used, and skipping it would leave the visitor waiting.
                    if frame["seq"] > after_seq or frame["type"] == "end":
                        await self.send_json(frame)
                        after_seq = max(after_seq, frame["seq"])
                    if frame["type"] == "end":
                        return
                elif time.monotonic() - last_watch >= WATCH_INTERVAL_S:
                    last_watch = time.monotonic()
                    watched = await database_sync_to_async(self._watch_sync)(message_id)
                    if watched.get("type") == "end":
                        await self.send_json(watched)
                        return
                    if watched.get("queue_position") not in (None, last_position):
                        last_position = watched["queue_position"]
                        await self.send_json(watched)

    def _watch_sync(self, message_id: int) -> dict:
        """Once a second while a reply is quiet: fail it if its worker is gone; report its queue position; and if
        it ended without an `end` frame reaching its stream (Redis restarted and lost it), build one from the
        database, with the full text, so the browser shows what was saved."""
        with contextlib.suppress(RedisError):
            services.reply_fail_if_abandoned(message_id=message_id)
        message = Message.objects.get(id=message_id)
        if message.status == Message.Status.QUEUED:
            return {"type": "status", "message_id": message_id, "seq": 0, "status": "queued",
                    "queue_position": selectors.queue_position(reply=message)}  # fmt: skip
        return services.reply_lost_end(message_id=message_id) or {}
