"""The worker side of a reply, around a scripted stand-in for the engine (the real engine is exercised end to
end in tests/e2e/test_chat.py): frames are numbered, the saved text is what was streamed, stop sequences never
reach the client, stop and engine errors end the reply with the right status."""

import threading
import time
from dataclasses import dataclass, field

import pytest

from demo_engine import generation, reply_stream, services
from demo_engine.models import Conversation, Message
from demo_engine.reply_stream import ReplyRef
from showcase.core import shared_redis


@dataclass
class FakeStats:
    prompt_tokens: int = 5
    generated_tokens: int = 0
    ttft_s: float = 0.01
    decode_tokens_per_s: float = 100.0
    backend: str = "fake"


@dataclass
class FakeEvent:
    text: str = ""
    token_count: int = 0
    final: bool = False
    finish_reason: str | None = None
    error: str | None = None
    stats: FakeStats | None = None


@dataclass
class FakePlan:
    token_ids: list[int] = field(default_factory=lambda: [1, 2, 3])
    dropped_turns: int = 0
    truncated_last_turn: bool = False


class ScriptedEngine:
    """Emits `pieces` as deltas from its own thread, then a final event; honours cancel between pieces."""

    def __init__(self, pieces: list[str], *, error: str | None = None, gate: threading.Event | None = None) -> None:
        self.pieces, self.error, self.gate = pieces, error, gate
        self.cancelled = threading.Event()
        self.params = None  # the SamplingParams of the last submit

    def render_chat(self, messages, *, max_new_tokens):
        assert messages[-1]["role"] == "user"
        return FakePlan()

    def submit(self, token_ids, params, on_event):
        engine = self
        self.params = params

        class Handle:
            def cancel(self) -> None:
                engine.cancelled.set()

        def run() -> None:
            count = 0
            for piece in self.pieces:
                if self.gate is not None and count == 2:
                    self.gate.wait(5)
                if self.cancelled.is_set():
                    break
                count += 1
                on_event(FakeEvent(text=piece, token_count=count))
            reason = "error" if self.error else ("cancelled" if self.cancelled.is_set() else "length")
            on_event(FakeEvent(final=True, finish_reason=reason, error=self.error,
                               stats=FakeStats(generated_tokens=count)))  # fmt: skip

        threading.Thread(target=run, daemon=True).start()
        return Handle()


@pytest.fixture
def reply(transactional_db) -> Message:
    conversation = Conversation.objects.create(session_key="test")
    _question, reply = services.chat_message_send(
        conversation=conversation, text="hello", sampling={"seed": 1, "temperature": 0.0, "max_new_tokens": 32}
    )
    shared_redis.client().delete(reply_stream.stream_key(ReplyRef.of(reply)), reply_stream.stop_key(ReplyRef.of(reply)))
    return reply


def frames_of(reply: Message) -> list[dict]:
    entries = shared_redis.client().xrange(reply_stream.stream_key(ReplyRef.of(reply)))
    return [reply_stream.decode_frame(fields) for _id, fields in entries]


def use_engine(monkeypatch, engine: ScriptedEngine) -> None:
    monkeypatch.setattr(generation.runtime, "get_engine", lambda: engine)


def test_saved_text_equals_the_streamed_deltas(reply, monkeypatch):
    """Every frame is numbered 1..n, the last is `end`, and the saved reply is exactly the deltas joined."""
    use_engine(monkeypatch, ScriptedEngine(["Hel", "lo ", "wor", "ld", "!"]))
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    frames = frames_of(reply)
    reply.refresh_from_db()
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert frames[0]["type"] == "status" and frames[-1]["type"] == "end"
    assert "".join(f["text"] for f in frames if f["type"] == "delta") == "Hello world!" == reply.content
    assert reply.status == "done" and reply.generated_tokens == 5 and reply.backend == "fake"


def test_a_reply_is_sampled_with_its_own_penalties_and_nothing_else(reply, monkeypatch, settings):
    """A reply saved without penalties is sampled without any (whatever the site's chat penalty), one saved with
    penalties gets exactly those: an API client's `temperature: 0` is the model's argmax."""
    settings.CHAT_REPETITION_PENALTY = 1.3
    engine = ScriptedEngine(["x"])
    use_engine(monkeypatch, engine)
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    plain = engine.params
    assert (plain.repetition_penalty, plain.frequency_penalty, plain.presence_penalty) == (1.0, 0.0, 0.0)
    assert plain.is_greedy
    conversation = Conversation.objects.create(session_key="test-penalties")
    _question, penalised = services.chat_message_send(
        conversation=conversation, text="hello", sampling={"seed": 1, "temperature": 0.0, "max_new_tokens": 8}
    )
    Message.objects.filter(id=penalised.id).update(repetition_penalty=1.2, frequency_penalty=0.5, presence_penalty=-1)
    generation.reply_generate(message_id=penalised.id, stream_token=penalised.stream_token.hex)
    chosen = engine.params
    assert (chosen.repetition_penalty, chosen.frequency_penalty, chosen.presence_penalty) == (1.2, 0.5, -1.0)


def test_a_reply_is_sampled_with_its_own_logit_bias(reply, monkeypatch):
    """An API reply saved with a logit_bias reaches the engine with exactly that bias (token ids as numbers); a
    reply without one is sampled without any."""
    engine = ScriptedEngine(["x"])
    use_engine(monkeypatch, engine)
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    assert engine.params.logit_bias == {}
    conversation = Conversation.objects.create(session_key="test-bias")
    _question, biased = services.chat_message_send(
        conversation=conversation, text="hello", sampling={"seed": 1, "temperature": 0.0, "max_new_tokens": 8}
    )
    Message.objects.filter(id=biased.id).update(logit_bias={"504": -100.0, "7": 2.5})
    generation.reply_generate(message_id=biased.id, stream_token=biased.stream_token.hex)
    assert engine.params.logit_bias == {504: -100.0, 7: 2.5}


def test_the_sites_own_i_dont_know_is_cut_by_the_content_filter_like_a_reply(reply, monkeypatch):
    """A booth-assistant reply with nothing relevant is the site's own answer; a blocked word in it is cut there and
    the reply ends stopped by the filter, its conversation flagged, as a generated reply would."""
    from demo_engine.models import BlockedPhrase

    BlockedPhrase.objects.create(phrase="exhibitor directory")
    Message.objects.filter(id=reply.id).update(grounded=True)
    use_engine(monkeypatch, ScriptedEngine(["never asked"]))
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    reply.refresh_from_db()
    assert reply.status == "stopped" and "content filter" in reply.failure_reason
    assert reply.content.startswith("I don't know") and "directory" not in reply.content
    reply.conversation.refresh_from_db()
    assert reply.conversation.flagged_at is not None


def test_a_reply_is_never_generated_twice(reply, monkeypatch):
    """A second delivery of the same task does nothing: the reply is no longer queued."""
    use_engine(monkeypatch, ScriptedEngine(["once"]))
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    assert [f["type"] for f in frames_of(reply)].count("end") == 1


def test_stop_sequence_ends_the_reply_and_is_never_shown(reply, monkeypatch):
    """Text stops right before a stop sequence, even one split across tokens; it is saved without it."""
    Message.objects.filter(id=reply.id).update(stop_sequences=["END"])
    use_engine(monkeypatch, ScriptedEngine(["The answer", " is 42. E", "N", "D more text", " never shown"]))
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    frames = frames_of(reply)
    shown = "".join(f["text"] for f in frames if f["type"] == "delta")
    reply.refresh_from_db()
    assert shown == "The answer is 42. " == reply.content
    assert frames[-1]["finish_reason"] == "stop" and reply.status == "done"


def test_stop_flag_ends_the_reply_as_stopped_with_its_text(reply, monkeypatch):
    """The stop flag set by the socket makes the reply end `stopped`, keeping the text streamed so far."""
    gate = threading.Event()
    engine = ScriptedEngine(["one ", "two ", "three ", "four "], gate=gate)
    use_engine(monkeypatch, engine)
    worker = threading.Thread(
        target=generation.reply_generate, kwargs={"message_id": reply.id, "stream_token": reply.stream_token.hex}
    )
    worker.start()
    deadline = time.monotonic() + 10
    while sum(f["type"] == "delta" for f in frames_of(reply)) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    services.reply_stop(reply=ReplyRef.of(reply))
    assert engine.cancelled.wait(2), "the worker polls the stop flag at least every 100 ms"
    gate.set()
    worker.join(10)
    reply.refresh_from_db()
    assert reply.status == "stopped" and reply.content == "one two "
    assert frames_of(reply)[-1]["status"] == "stopped"


def test_engine_error_fails_the_reply_with_a_reason(reply, monkeypatch):
    """An engine error ends the reply `failed`, with the reason in plain words and the text so far kept."""
    use_engine(monkeypatch, ScriptedEngine(["partial"], error="out of memory"))
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    reply.refresh_from_db()
    assert reply.status == "failed" and "out of memory" in reply.failure_reason and reply.content == "partial"
    assert reply.failure_code == "engine_error"


def test_abandoned_reply_is_failed_with_its_partial_text(reply, monkeypatch):
    """A streaming reply whose worker heartbeat is gone is failed by the watchdog, keeping the streamed text."""
    services.reply_start(message_id=reply.id)
    reply_stream.append(ReplyRef.of(reply), {"type": "delta", "message_id": reply.id, "seq": 1,
                                                        "text": "half a rep", "tokens": 3})  # fmt: skip
    assert services.reply_fail_if_abandoned(reply=ReplyRef.of(reply)) is True
    reply.refresh_from_db()
    assert reply.status == "failed" and reply.content == "half a rep" and reply.failure_code == "worker_lost"
    assert frames_of(reply)[-1]["seq"] == 2


def test_a_finished_reply_stream_expires_soon(reply, monkeypatch):
    """Once a reply has ended (its text saved), its Redis stream is kept for minutes, not the hour a live one gets."""
    use_engine(monkeypatch, ScriptedEngine(["short"]))
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    ttl = shared_redis.client().ttl(reply_stream.stream_key(ReplyRef.of(reply)))
    assert 0 < ttl <= reply_stream.FINISHED_STREAM_TTL_S


def test_a_booth_reply_never_shows_the_prompts_label_it_repeats(reply, monkeypatch):
    """The booth assistant's reply that opens with "The answer:" (the prompt's line before the question), even split
    across tokens, is streamed and saved without it; the saved text is still the deltas joined."""
    from demo_engine.booth import grounding

    Message.objects.filter(id=reply.id).update(grounded=True)
    built = grounding.Grounding(question="hello", language="en", relevant=True,
                                messages=[{"role": "user", "content": "hello"}], echo="The answer:")  # fmt: skip
    monkeypatch.setattr(generation.booth_grounding, "grounding_build", lambda **_: built)
    use_engine(monkeypatch, ScriptedEngine(["The", " ans", "wer", ":", " Huangpu", " Robotics", ": hall H1"]))
    generation.reply_generate(message_id=reply.id, stream_token=reply.stream_token.hex)
    reply.refresh_from_db()
    shown = "".join(f["text"] for f in frames_of(reply) if f["type"] == "delta")
    assert shown == "Huangpu Robotics: hall H1" == reply.content
