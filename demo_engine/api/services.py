"""Writes of the HTTP API: keys, per-key rate limits, usage, and turning a completion request into a queued reply
of the chat's own kind (so it joins the workers' continuous batching beside the browser chats)."""

from __future__ import annotations

import secrets

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from demo_engine import admission, moderation
from demo_engine import services as chat_services
from demo_engine.api import selectors
from demo_engine.api.wire import ApiError, CompletionRequest
from demo_engine.models import ApiKey, ApiUsage, Conversation, Message
from showcase.core import metrics


def api_key_create(*, name: str, requests_per_minute: int | None = None) -> tuple[ApiKey, str]:
    """A new key and its secret. The secret is returned once and never stored: only its hash is."""
    secret = selectors.KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey(name=name, prefix=secret[: selectors.VISIBLE_PREFIX_CHARS], key_hash=selectors.key_hash(secret))
    if requests_per_minute is not None:
        api_key.requests_per_minute = requests_per_minute
    api_key.full_clean()
    api_key.save()
    return api_key, secret


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key: every later request with it gets 401. Its usage stays on record."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_rate_limit_take(*, api_key: ApiKey) -> int | None:
    """Count one request against the key's per-minute limit (a Redis counter per minute, shared by every web
    process). Returns the seconds to wait when the limit is reached, else None."""
    return admission.api_rate_take(api_key_id=api_key.id, requests_per_minute=api_key.requests_per_minute)


def api_usage_record(*, api_key_id: int, requests: int = 0, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
    """Add to today's usage row of the key (created on first use)."""
    metrics.api_usage(key_id=api_key_id, requests=requests, prompt=prompt_tokens, completion=completion_tokens)
    day = timezone.localdate()
    ApiUsage.objects.get_or_create(api_key_id=api_key_id, day=day)
    ApiUsage.objects.filter(api_key_id=api_key_id, day=day).update(
        requests=F("requests") + requests,
        prompt_tokens=F("prompt_tokens") + prompt_tokens,
        completion_tokens=F("completion_tokens") + completion_tokens,
    )


def api_usage_record_reply(*, api_key_id: int, message_id: int) -> None:
    """Add a finished reply's tokens (as its worker reported them) to the key's usage."""
    reply = Message.objects.filter(id=message_id).only("prompt_tokens", "generated_tokens").first()
    if reply is not None and (reply.prompt_tokens or reply.generated_tokens):
        api_usage_record(api_key_id=api_key_id, prompt_tokens=reply.prompt_tokens or 0,
                         completion_tokens=reply.generated_tokens or 0)  # fmt: skip


@transaction.atomic
def _completion_save(*, api_key: ApiKey, completion: CompletionRequest) -> Message:
    conversation = Conversation.objects.create(session_key=f"api:{api_key.id}")
    Message.objects.bulk_create(
        Message(conversation=conversation, role=turn["role"], content=turn["content"], origin=Message.Origin.API)
        for turn in completion.messages
    )
    reply = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.QUEUED,
        origin=Message.Origin.API,
        seed=completion.seed,
        temperature=completion.temperature,
        top_p=completion.top_p,
        frequency_penalty=completion.frequency_penalty,
        presence_penalty=completion.presence_penalty,
        logit_bias=completion.logit_bias,
        max_new_tokens=completion.max_new_tokens,
        stop_sequences=completion.stop,
        grounded=completion.grounded,
    )
    last_question = next((turn["content"] for turn in reversed(completion.messages) if turn["role"] == "user"), "")
    conversation.title = f"API · {api_key.name}: {last_question}"[:120]
    conversation.save(update_fields=["title", "updated_at"])
    ApiKey.objects.filter(id=api_key.id).update(last_used_at=timezone.now())
    return reply


def _user_messages_check(completion: CompletionRequest) -> None:
    for index, turn in enumerate(completion.messages):
        if turn["role"] != "user":
            continue
        try:
            moderation.message_check(text=turn["content"], language=None, conversation=None)
        except admission.Refused as refused:
            raise ApiError(400, refused.message, param=f"messages[{index}].content", code="content_filter") from None


def api_completion_start(*, api_key: ApiKey, completion: CompletionRequest) -> Message:
    """Save the request's messages and a queued reply (origin "api") in a conversation of their own, and hand the
    reply to a worker. Refused before anything is saved: with 400 when a user message contains a phrase staff blocked
    for every language (the same phrases that cut an API reply), with 503 when no worker runs or the queue is full."""
    _user_messages_check(completion)
    if not chat_services.workers_may_be_alive():
        raise ApiError(503, admission.NO_WORKER_MESSAGE, code="no_worker", error_type="server_error",
                       headers={"Retry-After": "5"})  # fmt: skip
    try:
        admission.queue_has_room()
    except admission.Refused as refused:
        raise ApiError(503, refused.message, code="overloaded", error_type="server_error",
                       headers={"Retry-After": str(refused.retry_after)}) from None  # fmt: skip
    reply = _completion_save(api_key=api_key, completion=completion)
    chat_services.reply_enqueue(reply=reply)
    api_usage_record(api_key_id=api_key.id, requests=1)
    return reply


def api_reply_sources(*, message_id: int, base_url: str) -> tuple[list[dict], list[str]]:
    """A finished `booth-assistant` reply's sources (links made absolute with `base_url`) and the figures of its
    text found in none of them."""
    reply = Message.objects.filter(id=message_id).only("sources", "unsupported_figures").first()
    if reply is None:
        return [], []
    sources = [{**source, "url": base_url.rstrip("/") + source["url"]} for source in reply.sources]
    return sources, list(reply.unsupported_figures)
