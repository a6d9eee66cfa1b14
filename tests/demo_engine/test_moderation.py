"""The content filter of a public screen: blocked phrases per language, a visitor's message refused before anything
is saved, a generated phrase cut before it reaches the client, and the conversation flagged for staff."""

import pytest

from demo_engine import generation, moderation
from demo_engine.models import BlockedPhrase, Conversation, Message
from tests.demo_engine.test_consumers import open_socket, open_socket_with_greeting, session_cookie  # noqa: F401
from tests.demo_engine.test_generation import ScriptedEngine, frames_of, reply, use_engine  # noqa: F401


@pytest.mark.parametrize(
    ("text", "blocked"),
    [
        ("what a con", True),
        ("What a CON!", True),
        ("the contest is open", False),  # a whole word only
        ("ｃｏｎ artist", True),  # full-width letters are the same word
        ("说点傻瓜的话", True),  # Chinese phrases match anywhere
        ("the   bad    word here", True),  # any run of spaces inside a phrase
        ("bad words", False),
    ],
)
def test_a_message_is_refused_only_for_a_whole_blocked_phrase(db, text, blocked):
    """Blocked phrases match whatever the case or width, as whole words for Latin text, anywhere for Chinese."""
    for phrase in ("con", "傻瓜", "bad word"):
        BlockedPhrase.objects.create(phrase=phrase)
    if blocked:
        with pytest.raises(moderation.Refused):
            moderation.message_check(text=text, language="en", conversation=None)
    else:
        moderation.message_check(text=text, language="en", conversation=None)


def test_a_phrase_of_one_language_does_not_block_another(db):
    """A word blocked for French conversations is allowed in English ones ("con" is harmless in English)."""
    BlockedPhrase.objects.create(phrase="con", language="fr")
    moderation.message_check(text="pros and con", language="en", conversation=None)
    with pytest.raises(moderation.Refused) as refused:
        moderation.message_check(text="quel con", language="fr", conversation=None)
    assert refused.value.code == "blocked_phrase" and "reformuler" in refused.value.message


socket_db = pytest.mark.django_db(transaction=True)


@socket_db
async def test_a_blocked_message_is_refused_politely_and_nothing_is_generated(session_cookie):  # noqa: F811
    """The visitor reads a polite refusal; no question, no reply is saved, and a later message still works."""
    await BlockedPhrase.objects.acreate(phrase="forbidden thing")
    communicator = await open_socket(session_cookie)
    await communicator.send_json_to({"type": "send", "text": "Tell me about the Forbidden  Thing."})
    error = await communicator.receive_json_from(timeout=10)
    await communicator.disconnect()
    assert error["type"] == "error" and error["code"] == "blocked_phrase"
    assert error["message"].startswith("Sorry, this screen cannot answer that message.")
    assert await Message.objects.acount() == 0


@socket_db
async def test_a_refused_message_flags_the_conversation_for_staff(session_cookie, monkeypatch):  # noqa: F811
    """When the visitor already has a conversation, refusing a message flags it, with the phrase, for staff."""
    from demo_engine import services

    monkeypatch.setattr(services, "workers_may_be_alive", lambda: False)
    await BlockedPhrase.objects.acreate(phrase="forbidden")
    communicator = await open_socket(session_cookie)
    await communicator.send_json_to({"type": "send", "text": "hello"})
    for _ in range(3):
        await communicator.receive_json_from(timeout=10)
    await communicator.send_json_to({"type": "send", "text": "something forbidden"})
    error = await communicator.receive_json_from(timeout=10)
    await communicator.disconnect()
    assert error["code"] == "blocked_phrase"
    conversation = await Conversation.objects.aget()
    assert conversation.flagged_at is not None and "forbidden" in conversation.flag_reason


def test_a_generated_phrase_is_cut_and_the_reply_ends_stopped_with_a_reason(reply, monkeypatch):  # noqa: F811
    """The phrase, even split across tokens, never reaches the client; the saved reply ends before it, `stopped`,
    with a reason staff read, and the conversation is flagged."""
    BlockedPhrase.objects.create(phrase="secret plan")
    engine = ScriptedEngine(["Our sec", "ret plan is", " to win.", " More text", " never shown"])
    engine.gate = engine.cancelled  # after two pieces the engine waits until the writer cancels it (at most 5 s)
    use_engine(monkeypatch, engine)
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    frames = frames_of(reply)
    shown = "".join(frame["text"] for frame in frames if frame["type"] == "delta")
    reply.refresh_from_db()
    assert shown == "Our " == reply.content
    assert reply.status == "stopped" and reply.failure_code == "blocked_phrase"
    assert reply.failure_reason == moderation.REPLY_CUT_REASON
    assert frames[-1]["type"] == "end" and frames[-1]["status"] == "stopped"
    assert engine.cancelled.is_set(), "the engine stops generating once the reply is cut"
    conversation = reply.conversation
    conversation.refresh_from_db()
    assert "secret plan" in conversation.flag_reason


def test_a_word_that_merely_starts_like_a_blocked_one_is_kept(reply, monkeypatch):  # noqa: F811
    """A blocked "ass" does not cut "assistant", even when the word arrives in pieces."""
    BlockedPhrase.objects.create(phrase="ass")
    use_engine(monkeypatch, ScriptedEngine(["I am an ass", "istant at", " the booth."]))
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    reply.refresh_from_db()
    assert reply.status == "done" and reply.content == "I am an assistant at the booth."


def test_a_phrase_at_the_very_end_is_cut_too(reply, monkeypatch):  # noqa: F811
    """A blocked word that is the reply's last word is cut when the reply ends."""
    BlockedPhrase.objects.create(phrase="ass")
    use_engine(monkeypatch, ScriptedEngine(["You are an ", "ass"]))
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    reply.refresh_from_db()
    assert reply.status == "stopped" and reply.content == "You are an "


def test_the_text_before_a_cut_is_all_kept_however_much_was_held_back(reply):  # noqa: F811
    """A short phrase found inside the characters held back for a longer one: the words before it are kept."""
    from demo_engine.reply_stream import ReplyRef

    writer = generation._ReplyWriter(ReplyRef.of(reply))
    writer.use_filter(moderation.ReplyFilter(["secret plan", "bad"]))
    writer.add("Fine. That is bad!")
    writer.flush(tokens=5, final=False)
    assert writer.cut_by_filter and writer.text == "Fine. That is "
