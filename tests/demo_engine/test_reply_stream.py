"""A reply's keys in Redis: named after the deployment and the reply's token, cleared when the reply ends."""

import pytest

from demo_engine import reply_stream, services
from demo_engine.models import Conversation, Message
from demo_engine.reply_stream import ReplyRef
from showcase.core import shared_redis


@pytest.fixture
def reply(transactional_db) -> Message:
    conversation = Conversation.objects.create(session_key="test")
    _question, reply = services.chat_message_send(
        conversation=conversation, text="hello", sampling={"seed": 1, "temperature": 0.0, "max_new_tokens": 8}
    )
    return reply


def test_a_replys_keys_carry_the_deployment_and_its_token(reply):
    """Every key of a reply starts with this deployment's prefix and names the reply's token, not only its id."""
    ref = ReplyRef.of(reply)
    for key in (reply_stream.stream_key(ref), reply_stream.stop_key(ref), reply_stream.heartbeat_key(ref)):
        assert key.startswith(shared_redis.redis_prefix()) and reply.stream_token.hex in key


def test_an_ended_reply_leaves_no_flag_or_heartbeat_and_its_stream_expires_soon(reply):
    """After the end frame, the stop flag and heartbeat are gone and the stream lives at most two minutes."""
    ref = ReplyRef.of(reply)
    services.reply_start(message_id=reply.id)
    reply_stream.stop_request(ref)
    shared_redis.client().set(reply_stream.heartbeat_key(ref), 1, ex=30)
    assert services.reply_finish(reply=ref, status="stopped", content="", seq=1)
    client = shared_redis.client()
    assert not client.exists(reply_stream.stop_key(ref)) and not client.exists(reply_stream.heartbeat_key(ref))
    assert 0 < client.ttl(reply_stream.stream_key(ref)) <= reply_stream.FINISHED_STREAM_TTL_S


def test_a_stop_left_by_a_reply_of_the_same_id_does_not_touch_a_new_one(reply):
    """A stop flag written for an earlier reply with the same database id (a reset database, another site) is not
    this reply's: only its own token's flag stops it."""
    stale = ReplyRef(message_id=reply.id, token="0" * 32)
    reply_stream.stop_request(stale)
    assert not reply_stream.stop_requested(ReplyRef.of(reply))


def test_two_deployments_on_one_redis_keep_apart(reply, settings):
    """The same reply id under two prefixes names two different keys: one site's stop is not the other's."""
    ref = ReplyRef.of(reply)
    try:
        settings.SHOWCASE_REDIS_PREFIX = "site-a"
        shared_redis.forget_prefix()
        reply_stream.stop_request(ref)
        key_a = reply_stream.stop_key(ref)
        settings.SHOWCASE_REDIS_PREFIX = "site-b"
        shared_redis.forget_prefix()
        assert reply_stream.stop_key(ref) != key_a and not reply_stream.stop_requested(ref)
    finally:
        shared_redis.client().delete(key_a)
        shared_redis.forget_prefix()
