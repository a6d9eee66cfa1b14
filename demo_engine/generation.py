"""One reply, generated in a worker: prompt from the conversation, tokens from the engine, frames to the
reply's Redis Stream in small numbered batches, and the final state saved. Runs in a thread of the worker's
pool; the engine's scheduler thread batches it with the other replies in flight.

Batching: deltas are flushed at least every 50 ms (the first one at once), so a browser gets a few frames a
second rather than one per token, and the text saved equals the concatenation of the deltas sent.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass

from django.conf import settings

from demo_engine import moderation, reply_stream, runtime, selectors, services
from demo_engine.booth import grounding as booth_grounding
from demo_engine.booth import replies as booth_replies
from demo_engine.models import Message
from demo_engine.protocol import DeltaFrame, ReplyStats
from demo_engine.reply_stream import ReplyRef

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.05
STOP_POLL_INTERVAL_S = 0.1


def _stats(final_event, dropped_turns: int) -> ReplyStats:
    stats = final_event.stats
    return {
        "prompt_tokens": stats.prompt_tokens,
        "generated_tokens": stats.generated_tokens,
        "time_to_first_token_ms": round(stats.ttft_s * 1000, 1) if stats.ttft_s is not None else None,
        "tokens_per_second": round(stats.decode_tokens_per_s, 1) if stats.decode_tokens_per_s else None,
        "backend": stats.backend,
        "dropped_turns": dropped_turns,
    }


@dataclass
class ReplyOutcome:
    """How a reply ended, as the worker saw it."""

    status: str
    reason: str = ""
    code: str = ""
    stats: ReplyStats | None = None
    finish_reason: str = ""


def reply_generate(*, message_id: int, stream_token: str) -> None:
    """Generate and stream one reply. Never raises for a generation problem: the reply ends `failed` instead.
    A task whose reply is not in this database under that token (the database was reset) is dropped."""
    if not Message.objects.filter(id=message_id, stream_token=stream_token).exists():
        logger.warning("reply %s with token %s is not in this database: task dropped", message_id, stream_token)
        return
    reply_ref = ReplyRef(message_id=message_id, token=stream_token)
    writer = _ReplyWriter(reply_ref)
    with reply_stream.Heartbeat(reply_ref):
        if not services.reply_start(message_id=message_id):
            return  # stopped, failed or taken while it waited: never run a reply twice
        try:
            writer.append({"type": "status", "message_id": message_id, "seq": writer.next_seq(), "status": "streaming"})
            reply = Message.objects.get(id=message_id)
            writer.use_stop_sequences(reply.stop_sequences)
            writer.use_filter(moderation.ReplyFilter.for_conversation(reply.conversation))
            outcome = _stream_reply(runtime.get_engine(), reply, writer)
            if writer.grounding is not None:  # a booth-assistant reply: its checked sources, before the end frame
                booth_replies.reply_sources_finish(message_id=message_id, grounding=writer.grounding,
                                                   reply_text=writer.text, append=writer.append,
                                                   next_seq=writer.next_seq)  # fmt: skip
        except Exception as exc:
            logger.exception("reply %s failed", message_id)
            outcome = ReplyOutcome(Message.Status.FAILED, f"The model failed: {type(exc).__name__}.", "engine_error")
        services.reply_finish(reply=reply_ref, status=outcome.status, content=writer.text, seq=writer.next_seq(),
                              reason=outcome.reason, code=outcome.code, stats=outcome.stats,
                              finish_reason=outcome.finish_reason,
                              from_statuses=(Message.Status.STREAMING,))  # fmt: skip


def sampling_params(
    *,
    temperature: float,
    top_p: float,
    seed: int | None,
    max_new_tokens: int,
    repetition_penalty: float = 1.0,
    frequency_penalty: float = 0.0,
    presence_penalty: float = 0.0,
    logit_bias: dict[int, float] | None = None,
):
    """The engine's sampling for a reply: exactly what the reply was saved with, nothing added (the chat page stores
    its site penalty in the reply; an API reply has what the client sent, so `temperature: 0` is the argmax)."""
    from demo_engine.engine import SamplingParams

    return SamplingParams(
        temperature=temperature,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        frequency_penalty=frequency_penalty,
        presence_penalty=presence_penalty,
        logit_bias=dict(logit_bias or {}),
        seed=seed,
        max_new_tokens=max_new_tokens,
    )


class _ReplyWriter:
    """Numbers the reply's frames and writes its text deltas, holding back what could be the start of a stop
    sequence or of a blocked phrase until it is known not to be one (so neither ever reaches the client)."""

    def __init__(self, reply: ReplyRef) -> None:
        self.reply = reply
        self.message_id = reply.message_id
        self.stop_sequences: list[str] = []
        self.hold_back = 0
        self.generated = ""  # all text from the engine
        self.sent = 0  # characters of `generated` already written as deltas
        self.seq = 0
        self.stopped_by_sequence = False
        self.filter: moderation.ReplyFilter | None = None
        self.cut_by_filter = False
        self.grounding: booth_grounding.Grounding | None = None
        self.echo = ""  # a booth reply: the prompt's label, cut from the reply's start if the model repeats it

    def use_stop_sequences(self, stop_sequences: list[str]) -> None:
        self.stop_sequences = [stop for stop in stop_sequences if stop]
        # A stop sequence can only be recognised once whole: hold back one character less than the longest.
        self.hold_back = max(self.hold_back, max((len(stop) for stop in self.stop_sequences), default=1) - 1)

    def use_filter(self, reply_filter: moderation.ReplyFilter) -> None:
        if reply_filter.pattern is not None:
            self.filter = reply_filter
            self.hold_back = max(self.hold_back, reply_filter.hold_back)

    @property
    def ended_early(self) -> bool:
        return self.stopped_by_sequence or self.cut_by_filter

    @property
    def text(self) -> str:
        return self.generated[: self.sent]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def append(self, frame: dict) -> None:
        reply_stream.append(self.reply, frame)

    def add(self, text: str) -> None:
        if not self.ended_early:
            self.generated += text

    def flush(self, *, tokens: int, final: bool) -> None:
        """Write the text that is safe to show as one delta frame."""
        if self.echo and self.sent == 0:
            # Nothing is shown until the reply's start can be told from a repeat of the prompt's label ("The
            # answer:"), which is then cut: the saved text stays the deltas joined.
            if not final and len(self.generated) < booth_grounding.ECHO_HOLD_CHARS:
                return
            self.generated = booth_grounding.echo_strip(self.generated, self.echo)
            self.echo = ""
        end = len(self.generated) if final else max(self.sent, len(self.generated) - self.hold_back)
        # Every stop sequence starts at or after `sent`: held-back text is what could begin one.
        cuts = [found for stop in self.stop_sequences if (found := self.generated.find(stop, self.sent)) != -1]
        if cuts:
            end = min(cuts)
            self.generated = self.generated[:end]
            self.stopped_by_sequence = True
        cut = self.filter.cut_at(self.generated, final=final) if self.filter is not None else None
        if cut is not None:
            # Everything before the phrase is decided (an earlier phrase would have been found first): send it all.
            end = max(self.sent, cut)
            self.generated = self.generated[:end]
            self.cut_by_filter = True
        if end > self.sent:
            delta: DeltaFrame = {"type": "delta", "message_id": self.message_id, "seq": self.next_seq(),
                                 "text": self.generated[self.sent : end], "tokens": tokens}  # fmt: skip
            self.append(delta)
            self.sent = end


def _cut_by_filter(reply: Message, writer: _ReplyWriter, stats) -> ReplyOutcome:
    moderation.conversation_flag(conversation=reply.conversation,
                                 reason=f"Reply {reply.id} cut at {writer.filter.found!r}")  # fmt: skip
    return ReplyOutcome(Message.Status.STOPPED, moderation.REPLY_CUT_REASON, moderation.REPLY_CUT_CODE, stats,
                        "cancelled")  # fmt: skip


def _stream_reply(engine, reply: Message, writer: _ReplyWriter) -> ReplyOutcome:
    messages = selectors.prompt_messages(reply=reply)
    if reply.grounded:  # the booth assistant: the prompt from the published content, its sources sent first
        writer.grounding = booth_grounding.grounding_build(history=messages)
        writer.append(booth_replies.sources_frame(message_id=reply.id, seq=writer.next_seq(),
                                                  grounding=writer.grounding, reply_text=None))  # fmt: skip
        if not writer.grounding.relevant:  # nothing published is relevant: the site says so, the model is not asked
            writer.add(booth_grounding.unknown_answer(language=writer.grounding.language))
            writer.flush(tokens=0, final=True)
            if writer.cut_by_filter:  # staff blocked a word of the site's own answer: cut and flagged like a reply
                return _cut_by_filter(reply, writer, stats=None)
            return ReplyOutcome(Message.Status.DONE, finish_reason="stop")
        messages = writer.grounding.messages
        writer.echo = writer.grounding.echo
        if writer.grounding.stop_at_blank_line:
            writer.use_stop_sequences([*writer.stop_sequences, booth_grounding.ANSWER_END])
    plan = engine.render_chat(messages, max_new_tokens=reply.max_new_tokens)
    if plan.truncated_last_turn and reply.origin == Message.Origin.API:
        reason = f"The prompt does not fit in the model's context of {engine.config.max_context} tokens."
        return ReplyOutcome(Message.Status.FAILED, reason, "prompt_too_long")
    # The client's own logit_bias (API), then, for the booth assistant, its bias toward the passages' tokens.
    logit_bias = {int(token): float(bias) for token, bias in (reply.logit_bias or {}).items()}
    start = ""
    if writer.grounding is not None and (writer.grounding.bias or writer.grounding.answer_start):
        tokenizer = engine.tokenizer
        grounding_bias = booth_grounding.logit_bias(grounding=writer.grounding, encode=tokenizer.encode,
                                                    decode=tokenizer.decode, end_id=tokenizer.eos_id)  # fmt: skip
        logit_bias = {**grounding_bias, **logit_bias}
        start = writer.grounding.answer_start
    params = sampling_params(temperature=reply.temperature, top_p=reply.top_p, seed=reply.seed,
                             max_new_tokens=reply.max_new_tokens, repetition_penalty=reply.repetition_penalty,
                             frequency_penalty=reply.frequency_penalty, presence_penalty=reply.presence_penalty,
                             logit_bias=logit_bias)  # fmt: skip
    prompt_ids = plan.token_ids
    if start:  # the answer's first words, written by the site: the model completes them
        prompt_ids = prompt_ids + engine.tokenizer.encode(start)
        writer.add(start)
    events: queue.Queue = queue.Queue()
    handle = engine.submit(prompt_ids, params, events.put)
    deadline = time.monotonic() + settings.CHAT_GENERATION_TIME_LIMIT_S
    tokens = 0
    last_flush = 0.0
    next_stop_poll = 0.0
    final = None
    timed_out = False
    try:
        while final is None:
            try:
                event = events.get(timeout=0.02)
            except queue.Empty:
                event = None
            while event is not None and final is None:
                if event.final:
                    final = event
                else:
                    writer.add(event.text)
                    tokens = event.token_count
                    event = None if events.empty() else events.get_nowait()
            now = time.monotonic()
            # The first delta goes at once (time to first token); later ones at most every 50 ms.
            if final is not None or writer.sent == 0 or now - last_flush >= FLUSH_INTERVAL_S:
                writer.flush(tokens=tokens, final=final is not None)
                last_flush = now
            if writer.ended_early and final is None:
                handle.cancel()
            if final is None and now >= next_stop_poll:
                next_stop_poll = now + STOP_POLL_INTERVAL_S
                if reply_stream.stop_requested(writer.reply):
                    handle.cancel()
                elif now > deadline:
                    timed_out = True
                    handle.cancel()
    except BaseException:
        handle.cancel()  # Redis gone mid-reply, or a bug: never leave the engine generating for nobody
        raise
    stats = _stats(final, plan.dropped_turns)
    if writer.cut_by_filter:
        return _cut_by_filter(reply, writer, stats)
    if writer.stopped_by_sequence:
        return ReplyOutcome(Message.Status.DONE, stats=stats, finish_reason="stop")
    if final.finish_reason == "cancelled":
        reason = "Stopped at the time limit for one reply." if timed_out else "Stopped by the visitor."
        return ReplyOutcome(Message.Status.STOPPED, reason, "time_limit" if timed_out else "", stats, "cancelled")
    if final.finish_reason == "error":
        return ReplyOutcome(Message.Status.FAILED, f"The model failed: {final.error or 'unknown error'}",
                            "engine_error", stats)  # fmt: skip
    return ReplyOutcome(Message.Status.DONE, stats=stats, finish_reason=final.finish_reason)
