"""API keys, rate limits, usage and the start of a completion, in-process (test database, the test Redis)."""

import pytest
from django.core.management import call_command

from demo_engine import services as chat_services
from demo_engine.api import selectors, services
from demo_engine.api.wire import ApiError, CompletionRequest
from demo_engine.models import ApiKey, BlockedPhrase, Conversation, Message

pytestmark = pytest.mark.django_db


def completion_request(**overrides) -> CompletionRequest:
    fields = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
              "max_new_tokens": 32, "temperature": 0.0, "top_p": 0.9, "seed": 7, "stop": ["\n\n"]}  # fmt: skip
    return CompletionRequest(**{**fields, **overrides})


def test_a_key_is_stored_only_as_a_hash_and_found_by_its_secret():
    """The secret is never stored; the key is found by it, shows a visible prefix, and a wrong secret finds none."""
    api_key, secret = services.api_key_create(name="team 3")
    stored = ApiKey.objects.get(id=api_key.id)
    assert secret.startswith("sk-waic-") and len(secret) > 40
    assert secret not in (stored.key_hash, stored.prefix) and secret.startswith(stored.prefix)
    assert selectors.api_key_by_secret(secret=secret) == api_key
    assert selectors.api_key_by_secret(secret=secret + "x") is None


def test_a_revoked_key_no_longer_authenticates():
    """After revocation the secret finds no key (every request with it gets 401)."""
    api_key, secret = services.api_key_create(name="old")
    services.api_key_revoke(api_key=api_key)
    assert selectors.api_key_by_secret(secret=secret) is None


def test_the_rate_limit_counts_per_key_and_says_how_long_to_wait():
    """A key over its requests per minute is told to wait 1–60 s; another key is unaffected."""
    busy, _ = services.api_key_create(name="busy", requests_per_minute=2)
    calm, _ = services.api_key_create(name="calm", requests_per_minute=2)
    assert services.api_rate_limit_take(api_key=busy) is None
    assert services.api_rate_limit_take(api_key=busy) is None
    retry_after = services.api_rate_limit_take(api_key=busy)
    assert retry_after is not None and 1 <= retry_after <= 60
    assert services.api_rate_limit_take(api_key=calm) is None


def test_usage_adds_up_per_key():
    """Requests and tokens add up in the key's usage record."""
    api_key, _ = services.api_key_create(name="counted")
    services.api_usage_record(api_key_id=api_key.id, requests=1)
    services.api_usage_record(api_key_id=api_key.id, prompt_tokens=30, completion_tokens=12)
    services.api_usage_record(api_key_id=api_key.id, requests=1, prompt_tokens=5, completion_tokens=1)
    assert selectors.api_usage_totals(api_key=api_key) == {"requests": 2, "prompt_tokens": 35, "completion_tokens": 13}


def test_a_completion_becomes_a_conversation_with_a_queued_api_reply(monkeypatch):
    """The request's messages are saved in a conversation of the key, with a queued reply of origin "api" carrying
    the request's sampling, and the reply is handed to a worker."""
    enqueued = []
    monkeypatch.setattr(chat_services, "workers_may_be_alive", lambda: True)
    monkeypatch.setattr(chat_services, "reply_enqueue", lambda *, reply: enqueued.append(reply.id))
    api_key, _ = services.api_key_create(name="dev")
    reply = services.api_completion_start(api_key=api_key, completion=completion_request())
    conversation = Conversation.objects.get(id=reply.conversation_id)
    turns = list(conversation.messages.values_list("role", "content", "status", "origin"))
    assert conversation.session_key == f"api:{api_key.id}"
    assert turns == [("system", "Be brief.", "done", "api"), ("user", "Hi?", "done", "api"),
                     ("assistant", "", "queued", "api")]  # fmt: skip
    assert (reply.seed, reply.temperature, reply.top_p, reply.max_new_tokens) == (7, 0.0, 0.9, 32)
    # Only what the client asked for: no repetition penalty of the site, OpenAI's penalties as sent.
    assert (reply.repetition_penalty, reply.frequency_penalty, reply.presence_penalty) == (1.0, 0.0, 0.0)
    assert reply.stop_sequences == ["\n\n"] and enqueued == [reply.id]
    assert selectors.api_usage_totals(api_key=api_key)["requests"] == 1


def test_a_completion_stores_the_penalties_the_client_sent(monkeypatch):
    """frequency_penalty and presence_penalty reach the saved reply, which the worker samples with."""
    monkeypatch.setattr(chat_services, "workers_may_be_alive", lambda: True)
    monkeypatch.setattr(chat_services, "reply_enqueue", lambda *, reply: None)
    api_key, _ = services.api_key_create(name="dev")
    completion = completion_request(frequency_penalty=0.75, presence_penalty=-0.5)
    reply = Message.objects.get(id=services.api_completion_start(api_key=api_key, completion=completion).id)
    assert (reply.repetition_penalty, reply.frequency_penalty, reply.presence_penalty) == (1.0, 0.75, -0.5)


def test_no_worker_refuses_a_completion_with_503_and_saves_nothing(monkeypatch):
    """With no worker alive the request is refused (503, Retry-After) before anything is saved or enqueued."""
    monkeypatch.setattr(chat_services, "workers_may_be_alive", lambda: False)
    api_key, _ = services.api_key_create(name="dev")
    with pytest.raises(ApiError) as refused:
        services.api_completion_start(api_key=api_key, completion=completion_request())
    assert refused.value.status == 503 and refused.value.code == "no_worker" and "Retry-After" in refused.value.headers
    assert not Message.objects.exists()


def test_a_blocked_phrase_in_a_user_message_is_refused_with_400_and_saves_nothing(monkeypatch):
    """A phrase staff blocked for every language refuses the request (400, code content_filter, the message that
    holds it named) before anything is saved or generated; one blocked for a single language does not apply to the
    API (its replies are cut only at phrases of every language too), and the client's system message is not checked."""
    enqueued = []
    monkeypatch.setattr(chat_services, "workers_may_be_alive", lambda: True)
    monkeypatch.setattr(chat_services, "reply_enqueue", lambda *, reply: enqueued.append(reply.id))
    BlockedPhrase.objects.create(phrase="forbidden thing")
    BlockedPhrase.objects.create(phrase="con", language="fr")
    api_key, _ = services.api_key_create(name="dev")
    messages = [{"role": "system", "content": "Never say FORBIDDEN thing."}, {"role": "user", "content": "Hi?"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Say ＦＯＲＢＩＤＤＥＮ  thing!"}]  # fmt: skip
    with pytest.raises(ApiError) as refused:
        services.api_completion_start(api_key=api_key, completion=completion_request(messages=messages))
    assert (refused.value.status, refused.value.code, refused.value.param) == (400, "content_filter",
                                                                              "messages[3].content")  # fmt: skip
    assert "rephrase" in refused.value.message
    assert not Message.objects.exists() and not enqueued
    allowed = [{"role": "system", "content": "Never say forbidden thing."}, {"role": "user", "content": "Quel con?"}]
    reply = services.api_completion_start(api_key=api_key, completion=completion_request(messages=allowed))
    assert enqueued == [reply.id]


def test_create_api_key_prints_the_key_once(capsys):
    """`manage.py create_api_key NAME` prints a working key; only its hash is kept."""
    call_command("create_api_key", "hackathon", "--requests-per-minute", "5")
    secret = capsys.readouterr().out.strip()
    api_key = selectors.api_key_by_secret(secret=secret)
    assert api_key is not None and api_key.name == "hackathon" and api_key.requests_per_minute == 5
    assert not ApiKey.objects.filter(key_hash=secret).exists()
