"""A booth-assistant reply in the worker, around the scripted engine of test_generation: a `sources` frame before
the text and a checked one after it, the sources and the not-found figures saved on the reply."""

import pytest

from demo_engine import generation, services
from demo_engine.models import Conversation, Message
from tests.demo_engine.test_generation import ScriptedEngine, frames_of, use_engine


@pytest.fixture
def ask(transactional_db, indexed_demo):
    def ask(question: str) -> Message:
        conversation = Conversation.objects.create(session_key="booth")
        _question, reply = services.chat_message_send(conversation=conversation, text=question, sampling={
            "seed": 1, "temperature": 0.0, "max_new_tokens": 32, "grounded": True})  # fmt: skip
        return reply

    return ask


def test_a_grounded_reply_streams_its_sources_and_marks_a_wrong_booth(ask, monkeypatch):
    """The model's wrong booth (E-210) is listed as not found, in the final frame and on the saved reply."""
    reply = ask("Which booth is Huangpu Robotics at?")
    use_engine(monkeypatch, ScriptedEngine(["Huangpu Robotics is in hall H1,", " booth E-210."]))
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    frames = frames_of(reply)
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    kinds = [f["type"] for f in frames]
    assert kinds[:2] == ["status", "sources"] and kinds[-2:] == ["sources", "end"]
    first, last = frames[1], frames[-2]
    assert not first["checked"] and first["sources"][0]["title"] == "Huangpu Robotics"
    assert last["checked"] and last["unsupported_figures"] == ["E-210"]
    assert last["sources"][0]["fact"] == "Huangpu Robotics: hall H1, booth B-112"
    reply.refresh_from_db()
    assert reply.status == "done" and reply.unsupported_figure_count == 1
    assert reply.sources[0]["url"] == "/exhibitors/huangpu-robotics/"


def test_an_off_topic_question_is_answered_i_dont_know_without_the_model(ask, monkeypatch):
    """Nothing relevant: the site's own answer, no source, and the model is never asked."""
    reply = ask("Who won the 2018 football World Cup?")
    engine = ScriptedEngine(["France won."])
    engine.render_chat = lambda *a, **k: pytest.fail("the model must not be asked")
    use_engine(monkeypatch, engine)
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    reply.refresh_from_db()
    assert reply.content.startswith("I don't know") and "/exhibitors/" in reply.content
    assert reply.sources == [] and reply.status == "done"
    assert frames_of(reply)[-2]["found"] is False


def test_the_plain_model_gets_no_sources(transactional_db, monkeypatch):
    """A reply asked for without grounding (`"grounded": false`) is the plain model's: no sources frame."""
    conversation = Conversation.objects.create(session_key="plain")
    _question, reply = services.chat_message_send(conversation=conversation, text="Hello", sampling={
        "seed": 1, "temperature": 0.0, "max_new_tokens": 32, "grounded": False})  # fmt: skip
    use_engine(monkeypatch, ScriptedEngine(["Hi!"]))
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    assert "sources" not in [f["type"] for f in frames_of(reply)]
