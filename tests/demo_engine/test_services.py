"""Finishing a reply and recovering an `end` frame that Redis lost."""

from datetime import timedelta

import pytest
from django.utils import timezone

from demo_engine import reply_stream, services
from demo_engine.models import Conversation, Message
from demo_engine.reply_stream import ReplyRef
from showcase.core import shared_redis


@pytest.fixture
def reply(transactional_db) -> Message:
    conversation = Conversation.objects.create(session_key="test")
    _question, reply = services.chat_message_send(
        conversation=conversation, text="hello", sampling={"seed": 1, "temperature": 0.0, "max_new_tokens": 32}
    )
    return reply


def _save_finished(reply: Message, *, seconds_ago: float) -> None:
    """The reply as its worker saved it, without the `end` frame that follows the save."""
    Message.objects.filter(id=reply.id).update(
        status=Message.Status.DONE, content="Paris.", finished_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


def test_no_lost_end_while_the_reply_runs(reply):
    assert services.reply_lost_end(reply=ReplyRef.of(reply)) is None


def test_a_just_finished_reply_waits_for_the_end_frame_its_worker_is_writing(reply):
    """The worker saves the reply, then writes its end frame: in between, nothing may be invented."""
    _save_finished(reply, seconds_ago=0.5)
    assert services.reply_lost_end(reply=ReplyRef.of(reply)) is None


def test_an_end_frame_lost_with_redis_is_rebuilt_from_the_saved_reply(reply):
    _save_finished(reply, seconds_ago=services.LOST_END_GRACE_S + 1)
    end = services.reply_lost_end(reply=ReplyRef.of(reply))
    assert end is not None
    assert (end["type"], end["status"], end["content"], end["length"]) == ("end", "done", "Paris.", 6)


def test_no_rebuilt_end_when_the_stream_holds_its_own(reply):
    assert services.reply_finish(reply=ReplyRef.of(reply), status="done", content="Paris.", seq=1)
    Message.objects.filter(id=reply.id).update(finished_at=timezone.now() - timedelta(minutes=1))
    assert reply_stream.has_end(ReplyRef.of(reply))
    assert services.reply_lost_end(reply=ReplyRef.of(reply)) is None
    assert shared_redis.client().exists(reply_stream.stream_key(ReplyRef.of(reply)))
