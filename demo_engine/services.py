"""Writes of the chat: conversations, messages, and the end of a reply. Change state, then emit the frame.

Finishing a reply is a conditional update (only from the statuses the caller expects), so that when the worker,
the stop button and the dead-worker watchdog race, exactly one of them finishes it and writes its `end` frame.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import TypedDict

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from demo_engine import admission, reply_stream, selectors
from demo_engine.models import Conversation, Message
from demo_engine.protocol import EndFrame, ReplyStats
from demo_engine.reply_stream import ReplyRef
from showcase.core import metrics


class SamplingChoice(TypedDict, total=False):
    """How a reply is sampled: chosen (and validated) when the visitor sends, stored on the reply."""

    seed: int
    temperature: float
    top_p: float
    max_new_tokens: int
    stop_sequences: list[str]
    origin: str
    repetition_penalty: float
    frequency_penalty: float
    presence_penalty: float
    grounded: bool


def conversation_start(*, session_key: str, language: str = "", kiosk_screen_id: int | None = None) -> Conversation:
    """A new conversation of the session, in the visitor's language (which blocked phrases apply), and at the
    kiosk screen it was held at, if any."""
    return Conversation.objects.create(session_key=session_key, language=language, kiosk_screen_id=kiosk_screen_id)


def conversation_for_session(*, session_key: str, conversation_id: str | None) -> Conversation:
    """The session's current conversation, or a new one."""
    conversation = selectors.conversation_get(conversation_id=conversation_id, session_key=session_key)
    return conversation or conversation_start(session_key=session_key)


@transaction.atomic
def chat_message_send(
    *, conversation: Conversation, text: str, sampling: SamplingChoice, stream_token: str | None = None
) -> tuple[Message, Message]:
    """Save the visitor's message and a queued reply to it (named in Redis by `stream_token`, when admission
    reserved one)."""
    question = Message.objects.create(conversation=conversation, role=Message.Role.USER, content=text)
    reply = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.QUEUED,
        **_token_field(stream_token),
        **sampling,
    )
    if not conversation.title:
        conversation.title = text[:120]
    conversation.save(update_fields=["title", "updated_at"])
    return question, reply


@transaction.atomic
def reply_regenerate(
    *, conversation: Conversation, sampling: SamplingChoice, stream_token: str | None = None
) -> tuple[Message | None, Message]:
    """Replace the last finished reply with a new queued one (the old one is kept, marked superseded)."""
    previous = selectors.last_reply(conversation=conversation)
    if previous is not None:
        previous.superseded = True
        previous.save(update_fields=["superseded"])
    reply = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.QUEUED,
        **_token_field(stream_token),
        **sampling,
    )
    return previous, reply


def _token_field(stream_token: str | None) -> dict:
    return {"stream_token": uuid.UUID(stream_token)} if stream_token else {}


def reply_enqueue(*, reply: Message) -> None:
    """Hand the reply to a worker on this site's `inference` queue. A task that waited too long is dropped, not run
    late. The task names the reply by id and stream token: a reset database that reused the id is not this reply."""
    from demo_engine.tasks import generate_reply

    metrics.reply_queued(reply=reply)
    generate_reply.apply_async(args=[reply.id, reply.stream_token.hex], queue="inference",
                               expires=settings.CHAT_TASK_EXPIRES_S)  # fmt: skip


def reply_start(*, message_id: int) -> bool:
    """Mark a queued reply as streaming; False when it is no longer queued (stopped, failed, or already taken)."""
    updated = Message.objects.filter(id=message_id, status=Message.Status.QUEUED).update(
        status=Message.Status.STREAMING, started_at=timezone.now()
    )
    return updated == 1


def reply_finish(
    *,
    reply: ReplyRef,
    status: str,
    content: str,
    seq: int,
    reason: str = "",
    code: str = "",
    stats: ReplyStats | None = None,
    finish_reason: str = "",
    from_statuses: tuple[str, ...] = selectors.IN_FLIGHT,
) -> bool:
    """Save the reply's final state and write its `end` frame; False when another party finished it first."""
    fields = {"status": status, "content": content, "failure_reason": reason[:300], "failure_code": code,
              "finished_at": timezone.now()}  # fmt: skip
    if stats is not None:
        fields.update(
            prompt_tokens=stats["prompt_tokens"],
            generated_tokens=stats["generated_tokens"],
            time_to_first_token_ms=stats["time_to_first_token_ms"],
            tokens_per_second=stats["tokens_per_second"],
            backend=stats["backend"],
            dropped_turns=stats["dropped_turns"],
        )
    updated = Message.objects.filter(id=reply.message_id, status__in=from_statuses).update(**fields)
    if updated != 1:
        return False
    metrics.reply_finished(message_id=reply.message_id, status=status, code=code, stats=stats)
    end: EndFrame = {"type": "end", "message_id": reply.message_id, "seq": seq, "status": status, "reason": reason,
                     "code": code, "finish_reason": finish_reason, "stats": stats,
                     "length": len(content)}  # fmt: skip
    reply_stream.append(reply, end)
    admission.reply_released(reply=reply)
    return True


def reply_stop(*, reply: ReplyRef) -> None:
    """Ask for a reply to stop: a flag the worker checks between steps; a reply still queued stops at once."""
    reply_stream.stop_request(reply)
    reply_finish(reply=reply, status=Message.Status.STOPPED, content="", seq=1,
                 reason="Stopped before it started.", from_statuses=(Message.Status.QUEUED,))  # fmt: skip


def reply_fail_if_abandoned(*, reply: ReplyRef) -> bool:
    """Fail a reply whose worker has gone (no heartbeat), or that waits while no worker runs. Keeps its text."""
    message = Message.objects.filter(id=reply.message_id).only("status").first()
    if message is None or message.status not in selectors.IN_FLIGHT:
        return False
    if message.status == Message.Status.STREAMING:
        if reply_stream.heartbeat_alive(reply):
            return False
        reason, code = "The worker writing this reply stopped. Please send your message again.", "worker_lost"
    else:
        if reply_stream.heartbeat_alive(reply) or workers_may_be_alive():
            return False
        reason, code = admission.NO_WORKER_MESSAGE, "no_worker"
    text, last_seq = reply_stream.text_so_far(reply)
    return reply_finish(reply=reply, status=Message.Status.FAILED, content=text, seq=last_seq + 1,
                        reason=reason, code=code)  # fmt: skip


def workers_may_be_alive() -> bool:
    """True when one of this site's workers reported recently, or when Redis itself restarted too recently for
    workers to have reported again (its presence set starts empty): a fresh Redis is no proof that no worker runs."""
    return bool(reply_stream.worker_names_alive()) or reply_stream.redis_restarted_recently()


# The worker saves a finished reply, then writes its `end` frame: for this long after `finished_at` a missing end
# frame is still on its way, not lost.
LOST_END_GRACE_S = 5.0


def reply_lost_end(*, reply: ReplyRef) -> dict | None:
    """For a reply saved as finished whose stream lacks its `end` frame (Redis restarted and lost it), an `end`
    built from the database, with the saved text in `content`, so a client shows what was saved. None while the
    reply runs, when its stream holds its end, and during the grace period after it finished."""
    message = Message.objects.get(id=reply.message_id)
    if not message.is_final:
        return None
    if message.finished_at and (timezone.now() - message.finished_at).total_seconds() < LOST_END_GRACE_S:
        return None
    try:
        if reply_stream.has_end(reply):
            return None
    except RedisError:
        pass
    return {"type": "end", "message_id": message.id, "seq": 1_000_000, "status": message.status,
            "reason": message.failure_reason, "code": message.failure_code, "finish_reason": "",
            "stats": selectors.reply_stats(message), "content": message.content,
            "length": len(message.content)}  # fmt: skip


def reply_watch(*, reply: ReplyRef) -> dict | None:
    """Once a second while a followed reply is quiet: fail it if its worker has gone (or none runs while it waits);
    a `status` frame with its queue position while it waits; the `end` frame rebuilt from the database when it
    ended without its end reaching the stream. None when there is nothing to say."""
    with contextlib.suppress(RedisError):
        reply_fail_if_abandoned(reply=reply)
    message = Message.objects.only("id", "status").get(id=reply.message_id)
    if message.status == Message.Status.QUEUED:
        return {"type": "status", "message_id": message.id, "seq": 0, "status": "queued",
                "queue_position": selectors.queue_position(reply=message)}  # fmt: skip
    return reply_lost_end(reply=reply)
