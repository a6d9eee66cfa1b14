"""Hostile input on the chat socket: random and malformed frames (Hypothesis) never crash the consumer, are
always answered with an error frame (or accepted as a valid frame), and never disturb another visitor's socket."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demo_engine import services
from showcase.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
frame_types = st.sampled_from(["send", "stop", "regenerate", "resume", "ping", "new_conversation", "", "SEND", "x"])
frames = st.one_of(
    st.text(max_size=300),  # anything at all, mostly not JSON
    st.binary(max_size=100),
    json_values.map(json.dumps),
    st.fixed_dictionaries({"type": frame_types}, optional={"text": json_values, "options": json_values,
                                                           "message_id": json_values, "after_seq": json_values}).map(
        json.dumps
    ),
)  # fmt: skip


async def connect(cookie: str) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", cookie.encode())]
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=10))["type"] == "hello"
    return communicator


def new_session_cookie() -> str:
    session = SessionStore()
    session.create()
    return f"sessionid={session.session_key}"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(frames, min_size=1, max_size=5))
async def test_random_frames_never_crash_the_consumer_nor_touch_a_bystander(batch, monkeypatch):
    """Whatever a client sends, it gets well-formed answers and its socket stays usable; a bystander's too."""
    monkeypatch.setattr(services, "workers_may_be_alive", lambda: False)  # nothing is generated: a reply fails at once
    attacker = await connect(await sync_to_async(new_session_cookie)())
    bystander = await connect(await sync_to_async(new_session_cookie)())
    for frame in batch:
        # Raw ASGI events: the communicator's helpers refuse empty frames, which a real client can send.
        key = "bytes" if isinstance(frame, bytes) else "text"
        await attacker.send_input({"type": "websocket.receive", key: frame})
    # The consumer handles frames in order: everything before the pong answers the batch, and must be well formed.
    await attacker.send_json_to({"type": "ping"})
    while (answer := await attacker.receive_json_from(timeout=10)) != {"type": "pong"}:
        assert answer["type"] in {"error", "message", "status", "delta", "end", "hello"}
        if answer["type"] == "error":
            assert answer["code"] and answer["message"]
    await bystander.send_json_to({"type": "ping"})
    assert await bystander.receive_json_from(timeout=5) == {"type": "pong"}
    assert await bystander.receive_nothing(timeout=0.1)
    # Together: closing a consumer waits for channels_redis's blocking receive (up to 1 s) to give up.
    await asyncio.gather(attacker.disconnect(), bystander.disconnect())
