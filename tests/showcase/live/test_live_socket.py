"""`/ws/live/` through the real channel layer (Redis): admin saves reach open sockets after commit, and the demo's
figures arrive about once a second."""

import json
import time

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client

from showcase.exhibits import services as exhibit_services
from showcase.exhibits.models import AISystem
from showcase.live.routing import websocket_urlpatterns


async def _connect() -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/live/")
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from()
    assert hello["type"] == "hello" and "compare" in hello["topics"]
    return communicator


async def _next(communicator: WebsocketCommunicator, topic: str, timeout: float) -> dict | None:
    """The next update of `topic` within `timeout` seconds (other topics are skipped), or None.

    A receive that times out cancels the consumer (asgiref), so this never lets one: the `demo` updates arrive every
    second, and the deadline is checked between frames."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = await communicator.receive_json_from(timeout=5)
        if frame.get("topic") == topic:
            return frame
    return None


def _staff_saves_deepseek_cost() -> None:
    user = get_user_model().objects.create_user("live-staff", password="wide-Cormorant-58-lantern", is_staff=True,
                                                is_superuser=True)  # fmt: skip
    client = Client()
    client.force_login(user)
    system = AISystem.objects.prefetch_related("sources").get(slug="deepseek-v3")
    page = client.get(f"/admin/exhibits/aisystem/{system.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() if form[name].value() is not None else "" for name in form.fields}
    data["training_cost_high_usd"] = "6000000"
    for prefix, formset in (("sources", page.context["inline_admin_formsets"][0].formset),
                            ("claims", page.context["inline_admin_formsets"][1].formset)):  # fmt: skip
        for key, value in formset.management_form.initial.items():
            data[f"{prefix}-{key}"] = value
        for index, inline in enumerate(formset.forms):
            for name in inline.fields:
                value = inline[name].value()
                if value is not None:
                    data[f"{prefix}-{index}-{name}"] = value
    data = {key: ("" if value is None else value) for key, value in data.items()}
    response = client.post(f"/admin/exhibits/aisystem/{system.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]


@pytest.mark.django_db(transaction=True)
async def test_an_admin_save_reaches_every_open_page_after_commit():
    """Staff save an AI system in the admin: every open live socket gets one `compare` update within 2 s."""
    await sync_to_async(exhibit_services.demo_content_load)()
    first, second = await _connect(), await _connect()
    await sync_to_async(_staff_saves_deepseek_cost)()
    saved = time.monotonic()  # the clock starts at the committed save (rendering the admin form is not the push's time)
    for communicator in (first, second):
        frame = await _next(communicator, "compare", timeout=2.0)
        assert frame is not None, "no compare update within 2 s"
        assert "aisystem" in frame["payload"]["models"]
    assert time.monotonic() - saved < 2.0
    # The system and its inline sources and claim are one save for staff: one event, not one per row.
    assert await _next(first, "compare", timeout=0.5) is None
    assert (await sync_to_async(AISystem.objects.get)(slug="deepseek-v3")).training_cost_high_usd == 6_000_000
    await first.disconnect()
    await second.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_rolled_back_change_is_never_announced():
    """A change that does not commit publishes nothing; the next committed one does."""
    await sync_to_async(exhibit_services.demo_content_load)()
    communicator = await _connect()

    def rolled_back() -> None:
        try:
            with transaction.atomic():
                AISystem.objects.filter(slug="gpt-3").first().save()
                raise RuntimeError("abandon")
        except RuntimeError:
            pass

    await sync_to_async(rolled_back)()
    assert await _next(communicator, "compare", timeout=1.0) is None
    await sync_to_async(lambda: AISystem.objects.get(slug="gpt-3").save())()
    assert await _next(communicator, "compare", timeout=2.0) is not None
    await communicator.disconnect()


@pytest.mark.django_db  # Channels closes old database connections on disconnect
async def test_the_demo_figures_arrive_every_second(settings):
    """A worker's published figures reach the socket as a `demo` update with the backend and the cost per million
    tokens at the configured hourly price."""
    import redis.asyncio as aioredis

    from demo_engine import reply_stream

    settings.DEMO_HOURLY_PRICE_USD = "0.36"
    client = aioredis.Redis.from_url(settings.REDIS_URL)
    name = "test-live-worker:1"
    figures = {"worker": name, "engine_loaded": True, "tokens_per_s": 100.0, "in_flight": 2, "queued": 0,
               "backend": "CPU · int4 bf16"}  # fmt: skip
    await client.zadd(reply_stream.workers_key(), {name: time.time() + 30})
    await client.set(reply_stream.worker_figures_key(name), json.dumps(figures), ex=30)
    try:
        communicator = await _connect()
        frame = await _next(communicator, "demo", timeout=3.0)
        assert frame is not None
        payload = frame["payload"]
        assert payload["available"] and payload["backend"] == "CPU · int4 bf16"
        assert payload["tokens_per_s"] >= 100.0 and payload["in_flight"] >= 2
        # $0.36 an hour at 100 tokens/s (360,000 an hour) is $1 per million tokens, per machine.
        assert payload["cost_per_million_tokens_usd"] == pytest.approx(payload["workers"] * 0.36e6
                                                                       / (payload["tokens_per_s"] * 3600))  # fmt: skip
        second = await _next(communicator, "demo", timeout=2.0)
        assert second is not None and 0.5 < second["payload"]["measured_at"] - payload["measured_at"] < 1.6
        await communicator.disconnect()
    finally:
        await client.zrem(reply_stream.workers_key(), name)
        await client.delete(reply_stream.worker_figures_key(name))
        await client.aclose()
