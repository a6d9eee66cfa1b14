"""The chat socket's guards, in-process (Channels' communicator, the real Redis, the test database): every bad
frame gets a clear error frame, nothing is saved or enqueued for it, and the socket stays usable."""

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore

from demo_engine import services
from demo_engine.consumers import MAX_FRAME_CHARS, sampling_from_options
from demo_engine.models import Message
from demo_engine.reply_stream import ReplyRef
from showcase.asgi import application
from showcase.core import shared_redis

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session_cookie() -> str:
    session = SessionStore()
    session.create()
    return f"sessionid={session.session_key}"


async def open_socket(cookie: str) -> WebsocketCommunicator:
    communicator, _hello = await open_socket_with_greeting(cookie)
    return communicator


async def open_socket_with_greeting(cookie: str) -> tuple[WebsocketCommunicator, dict]:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", cookie.encode())]
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from(timeout=10)
    assert hello["type"] == "hello"
    return communicator, hello


@pytest.fixture
def no_worker_alive(monkeypatch):
    """Pretend no inference worker is alive (the presence set is what the site checks)."""
    monkeypatch.setattr(services, "workers_may_be_alive", lambda: False)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json at all", "bad_frame"),
        ("[1, 2, 3]", "bad_frame"),
        ('{"no_type": 1}', "bad_frame"),
        ('{"type": "launch_missiles"}', "unknown_type"),
        ('{"type": "send"}', "bad_frame"),
        ('{"type": "send", "text": "   "}', "bad_frame"),
        ('{"type": "send", "text": "hi", "options": {"temperature": "hot"}}', "bad_frame"),
        ('{"type": "resume", "message_id": "x"}', "bad_frame"),
        ('{"type": "stop"}', "nothing_to_stop"),
        ("x" * (MAX_FRAME_CHARS + 1), "frame_too_large"),
        ("[" * 5000 + "]" * 5000, "bad_frame"),  # nested deeper than the JSON parser recurses
        ('{"type": "send", "text": "hi \\ud800 there"}', "bad_frame"),  # a lone surrogate: not storable text
        ('{"type": "send", "text": "hi \\u0000 there"}', "bad_frame"),  # a NUL: PostgreSQL cannot store it
    ],
)
async def test_malformed_frames_get_an_error_and_save_nothing(session_cookie, raw, code):
    """A malformed frame is answered with an error frame naming the problem; nothing is saved; the socket lives on."""
    communicator = await open_socket(session_cookie)
    await communicator.send_to(text_data=raw)
    error = await communicator.receive_json_from(timeout=10)
    assert error["type"] == "error" and error["code"] == code and error["message"]
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=10) == {"type": "pong"}
    await communicator.disconnect()
    assert await Message.objects.acount() == 0


async def test_binary_frames_are_refused(session_cookie):
    """A binary frame gets an error frame, not a crash."""
    communicator = await open_socket(session_cookie)
    await communicator.send_to(bytes_data=b"\x00\x01")
    error = await communicator.receive_json_from(timeout=10)
    assert error["code"] == "bad_frame"
    await communicator.disconnect()


async def test_too_long_message_is_refused_with_the_limit(session_cookie, settings):
    """A message over the length limit is refused with the limit in the error, and nothing is saved."""
    settings.CHAT_MAX_MESSAGE_CHARS = 50
    communicator = await open_socket(session_cookie)
    await communicator.send_json_to({"type": "send", "text": "y" * 51})
    error = await communicator.receive_json_from(timeout=10)
    assert error["code"] == "too_long" and "50" in error["message"]
    await communicator.disconnect()
    assert await Message.objects.acount() == 0


async def test_full_queue_says_busy_and_enqueues_nothing(session_cookie, settings):
    """When the queue is full the visitor is told to try again shortly; nothing is saved."""
    settings.CHAT_MAX_QUEUED = 0
    communicator = await open_socket(session_cookie)
    await communicator.send_json_to({"type": "send", "text": "hello"})
    error = await communicator.receive_json_from(timeout=10)
    assert error["code"] == "busy"
    await communicator.disconnect()
    assert await Message.objects.acount() == 0


async def test_flood_is_rate_limited_with_retry_after(session_cookie, settings, no_worker_alive):
    """Past the per-minute limit, sends are refused with a retry-after, and the refused ones save nothing."""
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 3
    communicator = await open_socket(session_cookie)
    codes = []
    for _ in range(5):
        await communicator.send_json_to({"type": "send", "text": "hello"})
        while True:
            frame = await communicator.receive_json_from(timeout=10)
            if frame["type"] == "error":
                codes.append(frame["code"])
                retry_after = frame.get("retry_after")
                break
            if frame["type"] == "end":
                codes.append("answered")
                break
    await communicator.disconnect()
    assert codes == ["answered", "answered", "answered", "rate_limited", "rate_limited"]
    assert 1 <= retry_after <= 60
    assert await Message.objects.filter(role="user").acount() == 3


async def test_no_worker_fails_the_reply_at_once_with_a_reason(session_cookie, no_worker_alive):
    """With no worker running, the visitor is told the model is unavailable, and the reply is saved as failed."""
    communicator = await open_socket(session_cookie)
    await communicator.send_json_to({"type": "send", "text": "hello"})
    question = await communicator.receive_json_from(timeout=10)
    reply = await communicator.receive_json_from(timeout=10)
    end = await communicator.receive_json_from(timeout=10)
    await communicator.disconnect()
    assert question["message"]["role"] == "user"
    assert reply["message"]["status"] == "failed"
    assert end["type"] == "end" and end["status"] == "failed" and "unavailable" in end["reason"]
    saved = await Message.objects.aget(id=reply["message"]["id"])
    assert saved.status == "failed" and "no worker" in saved.failure_reason


async def test_conversation_survives_a_reconnect(session_cookie, no_worker_alive):
    """A second socket with the same session gets the same conversation back; "new conversation" starts afresh."""
    communicator = await open_socket(session_cookie)
    await communicator.send_json_to({"type": "send", "text": "remember me"})
    for _ in range(3):
        await communicator.receive_json_from(timeout=10)
    await communicator.disconnect()
    again, hello = await open_socket_with_greeting(session_cookie)
    assert [m["content"] for m in hello["messages"] if m["role"] == "user"] == ["remember me"]
    await again.send_json_to({"type": "new_conversation"})
    fresh = await again.receive_json_from(timeout=10)
    await again.disconnect()
    assert fresh["type"] == "hello" and fresh["messages"] == []
    third, hello = await open_socket_with_greeting(session_cookie)
    await third.disconnect()
    assert hello["messages"] == [], "the new conversation is the session's current one"


def test_sampling_options_are_validated_and_capped(settings):
    """A client may choose seed and temperature; max_new_tokens is capped at the site's maximum; the chat page's
    replies carry the site's documented repetition penalty."""
    settings.CHAT_MAX_NEW_TOKENS = 64
    settings.CHAT_REPETITION_PENALTY = 1.2
    assert sampling_from_options({"seed": 5, "temperature": 0, "max_new_tokens": 10_000}) == {
        "seed": 5,
        "temperature": 0.0,
        "max_new_tokens": 64,
        "grounded": False,
        "repetition_penalty": 1.2,
    }
    # The booth assistant, as the page asks: greedy unless the client says otherwise, and never the site's penalty
    # (it counts the prompt's tokens, so it pushed answers away from the passages they must copy).
    booth = sampling_from_options({"grounded": True})
    assert (booth["grounded"], booth["temperature"], booth["repetition_penalty"]) == (True, 0.0, 1.0)
    assert sampling_from_options({"grounded": True, "temperature": 0.5})["temperature"] == 0.5
    # ... and no longer than its eval measured it: past that, a 135M model loops for seconds.
    settings.CHAT_GROUNDED_MAX_NEW_TOKENS = 48
    assert booth["max_new_tokens"] == 64 and sampling_from_options({"grounded": True})["max_new_tokens"] == 48
    assert sampling_from_options({"grounded": True, "max_new_tokens": 500})["max_new_tokens"] == 48
    assert sampling_from_options({})["temperature"] == settings.CHAT_TEMPERATURE == 0.7
    with pytest.raises(Exception, match="seed"):
        sampling_from_options({"seed": -1})


def test_frames_are_json_documented_types():
    """Error frames serialise to JSON with a code and a message (what any client can rely on)."""
    from demo_engine.protocol import error_frame

    assert json.loads(json.dumps(error_frame("busy", "later", retry_after=3))) == {
        "type": "error",
        "code": "busy",
        "message": "later",
        "retry_after": 3,
    }


async def test_an_end_frame_sharing_a_seq_still_ends_the_reply(session_cookie):
    """An `end` written by the watchdog with a seq a racing worker frame already used still reaches the visitor."""
    from channels.db import database_sync_to_async

    from demo_engine import reply_stream

    def streaming_reply() -> int:
        session = SessionStore(session_key=session_cookie.split("=", 1)[1])
        conversation = services.conversation_for_session(session_key=session.session_key, conversation_id=None)
        session["conversation_id"] = str(conversation.id)
        session.save()
        _question, reply = services.chat_message_send(
            conversation=conversation, text="hi", sampling={"seed": 1, "temperature": 0.0, "max_new_tokens": 8}
        )
        services.reply_start(message_id=reply.id)
        shared_redis.client().set(reply_stream.heartbeat_key(ReplyRef.of(reply)), 1, ex=30)
        for frame in (
            {"type": "status", "message_id": reply.id, "seq": 1, "status": "streaming"},
            {"type": "end", "message_id": reply.id, "seq": 1, "status": "failed", "reason": "gone", "code": "x",
             "finish_reason": "", "stats": None, "length": 0},
        ):  # fmt: skip
            reply_stream.append(ReplyRef.of(reply), frame)
        return reply.id

    reply_id = await database_sync_to_async(streaming_reply)()
    communicator = await open_socket(session_cookie)
    frames = [await communicator.receive_json_from(timeout=10) for _ in range(2)]
    await communicator.disconnect()
    assert [(f["type"], f["message_id"]) for f in frames] == [("status", reply_id), ("end", reply_id)]


async def test_idle_and_new_conversation_sockets_write_no_rows():
    """Sockets without a cookie that only connect and ask for new conversations save no session and no conversation:
    a flood of them costs the database nothing."""
    from django.contrib.sessions.models import Session

    from demo_engine.models import Conversation

    sessions, conversations = await Session.objects.acount(), await Conversation.objects.acount()
    for _ in range(5):
        communicator = await open_socket("")
        for _ in range(3):
            await communicator.send_json_to({"type": "new_conversation"})
            assert (await communicator.receive_json_from(timeout=10))["type"] == "hello"
        await communicator.disconnect()
    assert (await Session.objects.acount(), await Conversation.objects.acount()) == (sessions, conversations)


async def test_one_address_gets_at_most_its_cap_of_replies_in_flight(settings, monkeypatch):
    """Cookieless sockets from one address each send a message: only CHAT_MAX_IN_FLIGHT_PER_ADDRESS replies are
    queued; the rest are refused with a reason, and the queue keeps room for everyone else."""
    settings.CHAT_MAX_IN_FLIGHT_PER_ADDRESS = 3
    monkeypatch.setattr(services, "workers_may_be_alive", lambda: True)
    codes = []
    sockets = []
    for index in range(8):
        communicator = await open_socket("")
        sockets.append(communicator)
        await communicator.send_json_to({"type": "send", "text": f"question {index}"})
        frame = await communicator.receive_json_from(timeout=10)
        codes.append(frame["code"] if frame["type"] == "error" else "accepted")
    for communicator in sockets:
        await communicator.disconnect()
    assert codes == ["accepted"] * 3 + ["too_many_from_address"] * 5
    assert await Message.objects.filter(role="assistant", status="queued").acount() == 3


async def test_a_place_is_given_back_when_the_reply_ends(settings, monkeypatch):
    """A reply that ends (here: stopped while it waits) frees its address's place for the next message."""
    settings.CHAT_MAX_IN_FLIGHT_PER_ADDRESS = 1
    monkeypatch.setattr(services, "workers_may_be_alive", lambda: True)
    communicator = await open_socket("")
    await communicator.send_json_to({"type": "send", "text": "first"})
    frames = [await communicator.receive_json_from(timeout=10) for _ in range(2)]
    assert [f["type"] for f in frames] == ["message", "message"]
    await communicator.send_json_to({"type": "stop"})
    end = await communicator.receive_json_from(timeout=10)
    assert (end["type"], end["status"]) == ("end", "stopped")
    await communicator.send_json_to({"type": "send", "text": "second"})
    assert (await communicator.receive_json_from(timeout=10))["type"] == "message"
    await communicator.disconnect()


async def test_resume_is_bounded(session_cookie, no_worker_alive):
    """`resume` answers a few times a minute, then says to wait: a client cannot make the site replay replies in a
    loop."""
    from demo_engine.consumers import RESUMES_PER_MINUTE

    communicator = await open_socket(session_cookie)
    await communicator.send_json_to({"type": "send", "text": "hello"})
    frames = [await communicator.receive_json_from(timeout=10) for _ in range(3)]
    reply_id = frames[1]["message"]["id"]
    codes = []
    for _ in range(RESUMES_PER_MINUTE + 3):
        await communicator.send_json_to({"type": "resume", "message_id": reply_id, "after_seq": 0})
        frame = await communicator.receive_json_from(timeout=10)
        codes.append(frame["type"] if frame["type"] != "error" else frame["code"])
    await communicator.disconnect()
    assert codes == ["end"] * RESUMES_PER_MINUTE + ["rate_limited"] * 3
