"""`/ws/chat/`: the visitor's chat socket. It validates frames, asks `admission` whether a reply may start, saves,
enqueues, and follows the reply back to the browser (`reply_follower`). It never runs the model, and `receive`
never waits for a generation: the reply is followed by a separate asyncio task of this connection.

A socket that has sent no message writes nothing: the session and the conversation are saved with the first
message (a flood of idle or `new_conversation` sockets costs no database rows).

Frames are documented in the README ("The chat socket") and typed in `demo_engine.protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from demo_engine import admission, moderation, selectors, services
from demo_engine.models import Conversation, Message
from demo_engine.protocol import error_frame, text_problem
from demo_engine.reply_follower import follow_reply
from demo_engine.reply_stream import ReplyRef
from showcase.core.language import language_of_scope

logger = logging.getLogger(__name__)

# A frame larger than this is refused before it is parsed (a question is at most a few thousand characters).
MAX_FRAME_CHARS = 16_000
# `resume` re-reads a reply's stream: a few a minute cover every real gap, and a client cannot make the site replay
# replies in a loop (1,000 resumes once drew 87,750 frames back).
RESUMES_PER_MINUTE = 12


class FrameError(admission.Refused):
    """A frame the client got wrong: answered with an error frame, never a traceback."""


def sampling_from_options(options: object) -> services.SamplingChoice:
    """The reply's sampling from the client's optional `options`; a missing seed gets a random one."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise FrameError("bad_frame", "'options' must be an object.")
    seed = options.get("seed", random.randrange(2**31))
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise FrameError("bad_frame", "'options.seed' must be a whole number ≥ 0.")
    grounded = options.get("grounded") is True  # the booth assistant (the chat page asks for it), else the plain model
    # The booth assistant answers as its eval measured it (greedy) unless the client asks otherwise.
    temperature = options.get(
        "temperature", settings.CHAT_GROUNDED_TEMPERATURE if grounded else settings.CHAT_TEMPERATURE
    )
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
        raise FrameError("bad_frame", "'options.temperature' must be a number from 0 to 2.")
    # The booth assistant answers in one or two sentences, at most as long as its eval measured them: what a 135M
    # model writes past that is a loop ("They are a technology company that…") for seconds of the visitor's time.
    cap = min(settings.CHAT_MAX_NEW_TOKENS, settings.CHAT_GROUNDED_MAX_NEW_TOKENS if grounded else 10**9)
    max_new_tokens = options.get("max_new_tokens", cap)
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
        raise FrameError("bad_frame", "'options.max_new_tokens' must be a whole number ≥ 1.")
    # Capped, not refused: a client asking for more simply gets the site's maximum.
    max_new_tokens = min(max_new_tokens, cap)
    # The chat page's repetition penalty is a documented site setting for the plain model; the API applies none unless
    # asked. A grounded reply gets none: the penalty counts the prompt's tokens, so it pushes the model away from the
    # very passages it must copy (with 1.1, "Where is Huangpu Robotics?" got "Sydney, Australia" on the chat page
    # while the same prompt without it answers "hall H1, booth B-112").
    penalty = 1.0 if grounded else settings.CHAT_REPETITION_PENALTY
    return {"seed": seed, "temperature": float(temperature), "max_new_tokens": max_new_tokens, "grounded": grounded,
            "repetition_penalty": penalty}  # fmt: skip


class ChatConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.follow_task: asyncio.Task | None = None
        self.resume_times: list[float] = []
        self.address = admission.address_from_scope(self.scope)
        self.language = self._language()
        self.conversation: Conversation | None = await database_sync_to_async(self._current_conversation)()
        await self.accept()
        await self._send_hello()

    async def disconnect(self, code: int) -> None:
        # The reply goes on without us: a reload picks it up from its stream.
        if self.follow_task is not None:
            self.follow_task.cancel()

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
        except admission.Refused as exc:  # a refused start, or a FrameError
            await self.send_json(error_frame(exc.code, exc.message, retry_after=exc.retry_after))
        except (RedisError, DatabaseError) as exc:
            logger.warning("chat frame failed, a part is unavailable: %s", exc)
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
        except RecursionError:
            raise FrameError("bad_frame", "Frames must not be nested this deeply.") from None
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
        problem = text_problem(text)
        if problem is not None:
            raise FrameError("bad_frame", f"'text' {problem}.")
        await database_sync_to_async(moderation.message_check)(text=text, language=self.language,
                                                               conversation=self.conversation)  # fmt: skip
        sampling = sampling_from_options(content.get("options"))
        question, reply, position = await database_sync_to_async(self._send_sync)(text, sampling)
        await self.send_json({"type": "message", "message": selectors.message_payload(question)})
        await self._announce_reply(reply, position)

    async def on_regenerate(self, content: dict) -> None:
        sampling = sampling_from_options(content.get("options"))
        previous, reply, position = await database_sync_to_async(self._regenerate_sync)(sampling)
        await self._announce_reply(reply, position, replaces=previous.id if previous else None)

    async def on_stop(self, content: dict) -> None:
        reply = None
        if self.conversation is not None:
            reply = await database_sync_to_async(selectors.reply_in_flight)(conversation=self.conversation)
        if reply is None:
            raise FrameError("nothing_to_stop", "No reply is being written.")
        await database_sync_to_async(services.reply_stop)(reply=ReplyRef.of(reply))

    async def on_new_conversation(self, content: dict) -> None:
        # No conversation row until the next message: the new conversation starts with it. The session (if the
        # browser has one) forgets the old one, so a reload does not bring it back.
        self.conversation = None
        if self.follow_task is not None:
            self.follow_task.cancel()
        await database_sync_to_async(self._forget_conversation)()
        await self._send_hello()

    async def on_resume(self, content: dict) -> None:
        message_id, after_seq = content.get("message_id"), content.get("after_seq", 0)
        if not isinstance(message_id, int) or not isinstance(after_seq, int) or after_seq < 0:
            raise FrameError("bad_frame", "'resume' needs an integer 'message_id' and 'after_seq' ≥ 0.")
        now = time.monotonic()
        self.resume_times = [at for at in self.resume_times if now - at < 60]
        if len(self.resume_times) >= RESUMES_PER_MINUTE:
            retry_after = max(1, int(60 - (now - self.resume_times[0])) + 1)
            raise FrameError("rate_limited", f"Too many resumes: try again in {retry_after} s.",
                             retry_after=retry_after)  # fmt: skip
        self.resume_times.append(now)
        reply = None
        await database_sync_to_async(self._check_still_ours)()
        if self.conversation is not None:
            reply = await database_sync_to_async(
                Message.objects.filter(
                    id=message_id, conversation=self.conversation, role=Message.Role.ASSISTANT
                ).first  # fmt: skip
            )()
        if reply is None:
            raise FrameError("not_found", "No such reply in this conversation.")
        self._follow(reply, after_seq)

    # Helpers -----------------------------------------------------------------------------------------------

    def _language(self) -> str:
        """The page's language (`?lang=` on the socket's URL, as the kiosk sends it), else the visitor's."""
        from urllib.parse import parse_qs

        requested = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("lang", [""])[0]
        return requested if requested in dict(settings.LANGUAGES) else language_of_scope(self.scope)

    def _check_still_ours(self) -> None:
        """Forget a conversation that left this session (handed over to a phone) while the socket was open."""
        if self.conversation is not None and not selectors.conversation_get(
            conversation_id=str(self.conversation.id), session_key=self.scope["session"].session_key or ""
        ):
            self.conversation = None

    def _current_conversation(self) -> Conversation | None:
        session = self.scope["session"]
        if not session.session_key:
            return None
        return selectors.conversation_get(conversation_id=session.get("conversation_id"),
                                          session_key=session.session_key)  # fmt: skip

    def _forget_conversation(self) -> None:
        session = self.scope["session"]
        if session.session_key and session.get("conversation_id"):
            del session["conversation_id"]
            session.save()

    def _conversation_for_writing(self) -> Conversation:
        """The conversation a message goes to: saved now, with the session, if this is the socket's first."""
        session = self.scope["session"]
        if not session.session_key:
            session.save()
        if self.conversation is None:
            self.conversation = services.conversation_start(
                session_key=session.session_key, language=self.language, kiosk_screen_id=session.get("kiosk_screen_id")
            )
        if session.get("conversation_id") != str(self.conversation.id):
            session["conversation_id"] = str(self.conversation.id)
            session.save()
        return self.conversation

    def _admit(self) -> str:
        """The shared guards, in order; returns the stream token of the reply they admitted."""
        session = self.scope["session"]
        admission.chat_rate_take(session_key=session.session_key or f"address:{self.address}")
        if self.conversation is not None and selectors.reply_in_flight(conversation=self.conversation) is not None:
            raise FrameError("reply_in_progress", "A reply is still being written: wait for it, or stop it.")
        admission.queue_has_room()
        return admission.address_admit(address=self.address)

    def _dispatch(self, reply: Message) -> int:
        """Enqueue the reply, or fail it at once when no worker is running. Returns its queue position."""
        if not services.workers_may_be_alive():
            services.reply_finish(reply=ReplyRef.of(reply), status=Message.Status.FAILED, content="", seq=1,
                                  reason=admission.NO_WORKER_MESSAGE, code="no_worker")  # fmt: skip
            reply.refresh_from_db()
            return 0
        services.reply_enqueue(reply=reply)
        return selectors.queue_position(reply=reply)

    def _send_sync(self, text: str, sampling: services.SamplingChoice) -> tuple[Message, Message, int]:
        self._check_still_ours()
        token = self._admit()
        try:
            conversation = self._conversation_for_writing()
            question, reply = services.chat_message_send(conversation=conversation, text=text, sampling=sampling,
                                                         stream_token=token)  # fmt: skip
        except BaseException:
            admission.address_release(token=token)
            raise
        return question, reply, self._dispatch(reply)

    def _regenerate_sync(self, sampling: services.SamplingChoice) -> tuple[Message | None, Message, int]:
        self._check_still_ours()
        if self.conversation is None or not self.conversation.messages.filter(role=Message.Role.USER).exists():
            raise FrameError("nothing_to_regenerate", "There is no question to answer again.")
        token = self._admit()
        try:
            previous, reply = services.reply_regenerate(conversation=self.conversation, sampling=sampling,
                                                        stream_token=token)  # fmt: skip
        except BaseException:
            admission.address_release(token=token)
            raise
        return previous, reply, self._dispatch(reply)

    async def _announce_reply(self, reply: Message, position: int, replaces: int | None = None) -> None:
        await self.send_json(
            {
                "type": "message",
                "message": selectors.message_payload(reply),
                "queue_position": position,
                "replaces": replaces,
            }  # fmt: skip
        )
        self._follow(reply, after_seq=0)

    async def _send_hello(self) -> None:
        messages = []
        if self.conversation is not None:
            messages = await database_sync_to_async(selectors.conversation_messages)(conversation=self.conversation)
        await self.send_json(
            {
                "type": "hello",
                "conversation_id": str(self.conversation.id) if self.conversation is not None else None,
                "messages": [selectors.message_payload(message) for message in messages],
                "limits": selectors.chat_limits(),
            }
        )
        for message in messages:
            if message.status in selectors.IN_FLIGHT:
                self._follow(message, after_seq=0)

    def _follow(self, reply: Message, after_seq: int) -> None:
        if self.follow_task is not None:
            self.follow_task.cancel()
        self.follow_task = asyncio.create_task(self._forward(ReplyRef.of(reply), after_seq))

    async def _forward(self, reply: ReplyRef, after_seq: int) -> None:
        """Send the reply's frames after `after_seq`, in order, until its `end` frame."""
        with contextlib.suppress(asyncio.CancelledError):
            async for frame in follow_reply(reply, after_seq=after_seq):
                await self.send_json(frame)
