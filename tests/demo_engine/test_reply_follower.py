"""Following a reply (the socket's and the API's one way): frames in order, and an end even when the watchdog
cannot reach the database."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError

from demo_engine import reply_follower, reply_stream, services
from demo_engine.models import Conversation, Message
from demo_engine.reply_stream import ReplyRef

pytestmark = pytest.mark.django_db(transaction=True)


def _streaming_reply() -> Message:
    conversation = Conversation.objects.create(session_key="test")
    _question, reply = services.chat_message_send(
        conversation=conversation, text="hello", sampling={"seed": 1, "temperature": 0.0, "max_new_tokens": 8}
    )
    services.reply_start(message_id=reply.id)
    ref = ReplyRef.of(reply)
    reply_stream.append(ref, {"type": "status", "message_id": reply.id, "seq": 1, "status": "streaming"})
    reply_stream.append(ref, {"type": "delta", "message_id": reply.id, "seq": 2, "text": "Half a", "tokens": 2})
    return reply


async def _follow(ref: ReplyRef, after_seq: int = 0) -> list[dict]:
    return [frame async for frame in reply_follower.follow_reply(ref, after_seq=after_seq)]


async def test_the_watchdog_failing_still_ends_the_stream(monkeypatch):
    """The database goes away mid-reply (the watchdog raises) and the worker never writes its end: the follower
    still ends with an `end` frame, failed, carrying the text delivered so far."""
    reply = await database_sync_to_async(_streaming_reply)()

    def database_down(**_kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(services, "reply_watch", database_down)
    monkeypatch.setattr(reply_follower, "WATCHDOG_GIVE_UP_S", 1.5)
    frames = await asyncio.wait_for(_follow(ReplyRef.of(reply)), timeout=15)
    assert [f["type"] for f in frames] == ["status", "delta", "end"]
    end = frames[-1]
    assert (end["status"], end["code"], end["content"], end["seq"]) == ("failed", "unavailable", "Half a", 3)


async def test_frames_after_an_offset_only_then_the_end():
    """A follower resuming after seq 1 gets the frames after it, then the end frame."""
    reply = await database_sync_to_async(_streaming_reply)()
    ref = ReplyRef.of(reply)
    end = {"type": "end", "message_id": reply.id, "seq": 3, "status": "done", "reason": "", "code": "",
           "finish_reason": "stop", "stats": None, "length": 6}  # fmt: skip
    await database_sync_to_async(reply_stream.append)(ref, end)
    frames = await asyncio.wait_for(_follow(ref, after_seq=1), timeout=15)
    assert [(f["type"], f["seq"]) for f in frames] == [("delta", 2), ("end", 3)]
