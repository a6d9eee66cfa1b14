"""Writes of the chat: conversations, messages, and the end of a reply. Change state, then emit the frame.

Finishing a reply is a conditional update (only from the statuses the caller expects), so that when the worker,
the stop button and the dead-worker watchdog race, exactly one of them finishes it and writes its `end` frame.
"""

from __future__ import annotations

import functools
import json
from typing import TypedDict

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from demo_engine import reply_stream, selectors
from demo_engine.models import Conversation, Message
from demo_engine.protocol import EndFrame, ReplyStats


class SamplingChoice(TypedDict, total=False):
    """How a reply is sampled: chosen (and validated) when the visitor sends, stored on the reply."""

    seed: int
    temperature: float
    top_p: float
    max_new_tokens: int
    stop_sequences: list[str]
    origin: str
    grounded: bool


@functools.cache
def _redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, health_check_interval=10)


def redis_client() -> redis.Redis:
    return _redis_client(settings.REDIS_URL)


def conversation_start(*, session_key: str) -> Conversation:
    return Conversation.objects.create(session_key=session_key)


def conversation_for_session(*, session_key: str, conversation_id: str | None) -> Conversation:
    """The session's current conversation, or a new one."""
    conversation = selectors.conversation_get(conversation_id=conversation_id, session_key=session_key)
    return conversation or conversation_start(session_key=session_key)


@transaction.atomic
def chat_message_send(*, conversation: Conversation, text: str, sampling: SamplingChoice) -> tuple[Message, Message]:
    """Save the visitor's message and a queued reply to it."""
    question = Message.objects.create(conversation=conversation, role=Message.Role.USER, content=text)
    reply = Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.QUEUED, **sampling
    )
    if not conversation.title:
        conversation.title = text[:120]
    conversation.save(update_fields=["title", "updated_at"])
    return question, reply


@transaction.atomic
def reply_regenerate(*, conversation: Conversation, sampling: SamplingChoice) -> tuple[Message | None, Message]:
    """Replace the last finished reply with a new queued one (the old one is kept, marked superseded)."""
    previous = selectors.last_reply(conversation=conversation)
    if previous is not None:
        previous.superseded = True
        previous.save(update_fields=["superseded"])
    reply = Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.QUEUED, **sampling
    )
    return previous, reply


def reply_enqueue(*, reply: Message) -> None:
    """Hand the reply to a worker on the `inference` queue. A task that waited too long is dropped, not run late."""
    from demo_engine.tasks import generate_reply

    generate_reply.apply_async(args=[reply.id], queue="inference", expires=settings.CHAT_TASK_EXPIRES_S)


def reply_start(*, message_id: int) -> bool:
    """Mark a queued reply as streaming; False when it is no longer queued (stopped, failed, or already taken)."""
    updated = Message.objects.filter(id=message_id, status=Message.Status.QUEUED).update(
        status=Message.Status.STREAMING, started_at=timezone.now()
    )
    return updated == 1


def stream_append(*, message_id: int, frame: dict) -> None:
    client = redis_client()
    key = reply_stream.stream_key(message_id)
    ttl_s = reply_stream.FINISHED_STREAM_TTL_S if frame["type"] == "end" else reply_stream.STREAM_TTL_S
    pipe = client.pipeline(transaction=False)
    pipe.xadd(key, reply_stream.encode_frame(frame))
    pipe.expire(key, ttl_s)
    pipe.execute()


def stream_text(*, message_id: int) -> tuple[str, int]:
    """The reply text delivered so far through its stream, and the last seq written."""
    text, last_seq = [], 0
    for _entry_id, fields in redis_client().xrange(reply_stream.stream_key(message_id)):
        frame = reply_stream.decode_frame(fields)
        last_seq = max(last_seq, frame["seq"])
        if frame["type"] == "delta":
            text.append(frame["text"])
    return "".join(text), last_seq


def reply_finish(
    *,
    message_id: int,
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
    updated = Message.objects.filter(id=message_id, status__in=from_statuses).update(**fields)
    if updated != 1:
        return False
    end: EndFrame = {"type": "end", "message_id": message_id, "seq": seq, "status": status, "reason": reason,
                     "code": code, "finish_reason": finish_reason, "stats": stats,
                     "length": len(content)}  # fmt: skip
    stream_append(message_id=message_id, frame=end)
    return True


def reply_stop(*, message_id: int) -> None:
    """Ask for a reply to stop: a flag the worker checks between steps; a reply still queued stops at once."""
    redis_client().set(reply_stream.stop_key(message_id), 1, ex=reply_stream.STREAM_TTL_S)
    reply_finish(message_id=message_id, status=Message.Status.STOPPED, content="", seq=1,
                 reason="Stopped before it started.", from_statuses=(Message.Status.QUEUED,))  # fmt: skip


def reply_fail_if_abandoned(*, message_id: int) -> bool:
    """Fail a reply whose worker has gone (no heartbeat), or that waits while no worker runs. Keeps its text."""
    client = redis_client()
    message = Message.objects.filter(id=message_id).only("status").first()
    if message is None or message.status not in selectors.IN_FLIGHT:
        return False
    if message.status == Message.Status.STREAMING:
        if client.exists(reply_stream.heartbeat_key(message_id)):
            return False
        reason, code = "The worker writing this reply stopped. Please send your message again.", "worker_lost"
    else:
        if client.exists(reply_stream.heartbeat_key(message_id)) or workers_may_be_alive():
            return False
        reason, code = "The model is unavailable right now: no worker is running.", "no_worker"
    text, last_seq = stream_text(message_id=message_id)
    return reply_finish(message_id=message_id, status=Message.Status.FAILED, content=text, seq=last_seq + 1,
                        reason=reason, code=code)  # fmt: skip


def worker_names_alive() -> list[str]:
    """Inference workers that reported in the last few seconds."""
    names = redis_client().zrangebyscore(reply_stream.WORKERS_KEY, reply_stream.live_worker_cutoff(), "+inf")
    return [name.decode() for name in names]


def workers_may_be_alive() -> bool:
    """True when a worker reported recently, or when Redis itself restarted too recently for workers to have
    reported again (its presence set starts empty): a fresh Redis is no proof that no worker runs."""
    if worker_names_alive():
        return True
    uptime_s = redis_client().info("server").get("uptime_in_seconds", 0)
    return uptime_s < reply_stream.WORKER_PRESENCE_S


def worker_presence_publish(*, worker_name: str, figures: dict) -> None:
    """A worker says it is alive, with its live figures (tokens/s now, chats in flight, backend)."""
    import time

    client = redis_client()
    pipe = client.pipeline(transaction=False)
    pipe.zadd(reply_stream.WORKERS_KEY, {worker_name: time.time()})
    pipe.zremrangebyscore(reply_stream.WORKERS_KEY, "-inf", time.time() - 3600)
    pipe.set(reply_stream.worker_figures_key(worker_name), json.dumps(figures), ex=30)
    pipe.execute()


# The worker saves a finished reply, then writes its `end` frame: for this long after `finished_at` a missing end
# frame is still on its way, not lost.
LOST_END_GRACE_S = 5.0


def reply_lost_end(*, message_id: int) -> dict | None:
    """For a reply saved as finished whose stream lacks its `end` frame (Redis restarted and lost it), an `end`
    built from the database, with the saved text in `content`, so a client shows what was saved. None while the
    reply runs, when its stream holds its end, and during the grace period after it finished."""
    reply = Message.objects.get(id=message_id)
    if not reply.is_final:
        return None
    if reply.finished_at and (timezone.now() - reply.finished_at).total_seconds() < LOST_END_GRACE_S:
        return None
    try:
        if stream_has_end(message_id=message_id):
            return None
    except redis.RedisError:
        pass
    return {"type": "end", "message_id": message_id, "seq": 1_000_000, "status": reply.status,
            "reason": reply.failure_reason, "code": reply.failure_code, "finish_reason": "",
            "stats": selectors.reply_stats(reply), "content": reply.content,
            "length": len(reply.content)}  # fmt: skip


def stream_has_end(*, message_id: int) -> bool:
    """Whether the reply's stream holds its `end` frame (it is the stream's last entry when it does)."""
    last = redis_client().xrevrange(reply_stream.stream_key(message_id), count=1)
    return bool(last) and reply_stream.decode_frame(last[0][1])["type"] == "end"
