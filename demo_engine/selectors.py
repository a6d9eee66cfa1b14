"""Reads of conversations and replies. No writes here (see services)."""

from django.conf import settings

from demo_engine.models import Conversation, Message
from demo_engine.protocol import MessagePayload, ReplyStats

IN_FLIGHT = (Message.Status.QUEUED, Message.Status.STREAMING)


def conversation_get(*, conversation_id: str | None, session_key: str) -> Conversation | None:
    """The session's conversation with this id, or None (a conversation never leaks to another session)."""
    if not conversation_id:
        return None
    return Conversation.objects.filter(id=conversation_id, session_key=session_key).first()


def conversation_messages(*, conversation: Conversation) -> list[Message]:
    """What the visitor sees: every message of the conversation, regenerated replies left out."""
    return list(conversation.messages.filter(superseded=False))


def reply_in_flight(*, conversation: Conversation) -> Message | None:
    """The conversation's reply that is queued or streaming, if any (at most one at a time)."""
    return conversation.messages.filter(role=Message.Role.ASSISTANT, status__in=IN_FLIGHT).last()


def last_reply(*, conversation: Conversation) -> Message | None:
    return conversation.messages.filter(role=Message.Role.ASSISTANT, superseded=False).last()


def queued_reply_count() -> int:
    """Replies waiting for a worker, across all conversations."""
    return Message.objects.filter(status=Message.Status.QUEUED).count()


def queue_position(*, reply: Message) -> int:
    """1 for the next reply a worker will take; counts the queued replies created before this one."""
    return Message.objects.filter(status=Message.Status.QUEUED, id__lt=reply.id).count() + 1


def prompt_messages(*, reply: Message) -> list[dict[str, str]]:
    """The turns the model sees for `reply`: earlier visible turns, without failed or empty replies."""
    turns = (
        Message.objects.filter(conversation_id=reply.conversation_id, id__lt=reply.id, superseded=False)
        .exclude(role=Message.Role.ASSISTANT, status__in=[Message.Status.FAILED, *IN_FLIGHT])
        .order_by("id")
    )
    return [{"role": turn.role, "content": turn.content} for turn in turns if turn.content]


def reply_stats(message: Message) -> ReplyStats | None:
    if message.role != Message.Role.ASSISTANT or message.generated_tokens is None:
        return None
    return {
        "prompt_tokens": message.prompt_tokens,
        "generated_tokens": message.generated_tokens,
        "time_to_first_token_ms": message.time_to_first_token_ms,
        "tokens_per_second": message.tokens_per_second,
        "backend": message.backend,
        "dropped_turns": message.dropped_turns,
    }


def message_payload(message: Message) -> MessagePayload:
    # An in-flight reply's text reaches the client through its stream, from the first frame: sending the
    # partial text here as well would show it twice.
    in_flight = message.status in IN_FLIGHT
    return {
        "id": message.id,
        "role": message.role,
        "content": "" if in_flight else message.content,
        "status": message.status,
        "status_label": str(Message.Status(message.status).label),
        "failure_reason": message.failure_reason,
        "stats": reply_stats(message),
        "grounded": message.grounded,
        "sources": [] if in_flight else message.sources,
        "unsupported_figures": [] if in_flight else message.unsupported_figures,
    }


def chat_limits() -> dict[str, int]:
    return {
        "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        "max_new_tokens": settings.CHAT_MAX_NEW_TOKENS,
        "rate_limit_per_minute": settings.CHAT_RATE_LIMIT_PER_MINUTE,
    }
