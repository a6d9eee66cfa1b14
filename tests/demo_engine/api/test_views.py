"""The `/v1/` views in-process, through Django's ASGI handler and every middleware: answers a client can rely on
before any generation starts."""

import asyncio
import json
import threading
import time

import pytest
from django.test import AsyncClient

from demo_engine import services as chat_services
from demo_engine.api import services
from demo_engine.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def secret() -> str:
    return services.api_key_create(name="views")[1]


async def test_a_body_over_the_upload_limit_is_a_413_in_openais_format(secret, settings):
    """A request body over Django's upload limit is refused with 413 in OpenAI's error format (not an HTML page)."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "x" * 2000}]})
    response = await AsyncClient().post("/v1/chat/completions", body, content_type="application/json",
                                        headers={"Authorization": f"Bearer {secret}"})  # fmt: skip
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


async def test_the_api_needs_no_csrf_token_and_answers_the_wrong_method_with_405(secret):
    """A POST without a CSRF token reaches the API (keys, not cookies, authenticate); GET on completions is a 405."""
    client = AsyncClient(enforce_csrf_checks=True)
    response = await client.post("/v1/chat/completions", "{}", content_type="application/json",
                                 headers={"Authorization": f"Bearer {secret}"})  # fmt: skip
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"
    wrong = await client.get("/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"})
    assert wrong.status_code == 405 and wrong["Allow"] == "POST"


async def test_a_client_gone_while_its_reply_is_saved_has_that_reply_stopped(secret, monkeypatch):
    """A client that disconnects while the view is still saving its reply (Django cancels the view then) does not
    leave that reply to be generated for nobody: once saved, it is stopped."""
    queued: list[int] = []
    saving = threading.Event()
    real_start = services.api_completion_start

    def slow_start(**kwargs):
        saving.set()
        time.sleep(0.3)  # the save is under way when the client goes away
        return real_start(**kwargs)

    monkeypatch.setattr(services, "api_completion_start", slow_start)
    monkeypatch.setattr(chat_services, "workers_may_be_alive", lambda: True)
    monkeypatch.setattr(chat_services, "reply_enqueue", lambda *, reply: queued.append(reply.id))
    body = json.dumps({"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Hello"}]})
    request = asyncio.create_task(AsyncClient().post("/v1/chat/completions", body, content_type="application/json",
                                                     headers={"Authorization": f"Bearer {secret}"}))  # fmt: skip
    while not saving.is_set():
        await asyncio.sleep(0.01)
    request.cancel()  # what Django's ASGI handler does when the client disconnects
    with pytest.raises(asyncio.CancelledError):
        await request
    for _ in range(100):  # the save finishes in its thread whatever happened to the request
        if queued:
            break
        await asyncio.sleep(0.02)
    assert len(queued) == 1, "the reply was saved and queued"
    reply = await Message.objects.aget(id=queued[0])
    assert reply.status == Message.Status.STOPPED
