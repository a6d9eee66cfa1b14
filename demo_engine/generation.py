"""One reply, generated in a worker: prompt from the conversation, tokens from the engine, frames to the
reply's Redis Stream in small numbered batches, and the final state saved. Runs in a thread of the worker's
pool; the engine's scheduler thread batches it with the other replies in flight.

Batching: deltas are flushed at least every 50 ms (the first one at once), so a browser gets a few frames a
second rather than one per token, and the text saved equals the concatenation of the deltas sent.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from demo_engine import reply_stream, runtime, selectors, services
from demo_engine.models import Message
from demo_engine.protocol import DeltaFrame, ReplyStats

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.05
STOP_POLL_INTERVAL_S = 0.1


class _Heartbeat:
    """Refreshes the reply's heartbeat key while this worker owns the reply; its absence means we died."""

    def __init__(self, message_id: int) -> None:
        self.key = reply_stream.heartbeat_key(message_id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{message_id}", daemon=True)

    def _run(self) -> None:
        client = services.redis_client()
        while not self._stop.is_set():
            try:
                client.set(self.key, 1, ex=reply_stream.HEARTBEAT_TTL_S)
            except Exception as exc:  # Redis restarting: the next beat retries
                logger.warning("heartbeat failed: %s", exc)
            self._stop.wait(1.0)

    def __enter__(self) -> _Heartbeat:
        # The first beat before anything else: a reply marked streaming without a heartbeat is failed by the
        # socket's once-a-second watchdog as "worker lost".
        services.redis_client().set(self.key, 1, ex=reply_stream.HEARTBEAT_TTL_S)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with contextlib.suppress(Exception):  # the key expires by itself
            services.redis_client().delete(self.key)


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


def reply_generate(*, message_id: int) -> None:
    """Generate and stream one reply. Never raises for a generation problem: the reply ends `failed` instead."""
    writer = _ReplyWriter(message_id)
    with _Heartbeat(message_id):
        if not services.reply_start(message_id=message_id):
            return  # stopped, failed or taken while it waited: never run a reply twice
        try:
            writer.append({"type": "status", "message_id": message_id, "seq": writer.next_seq(), "status": "streaming"})
            reply = Message.objects.get(id=message_id)
            writer.use_stop_sequences(reply.stop_sequences)
            outcome = _stream_reply(runtime.get_engine(), reply, writer)
        except Exception as exc:
            logger.exception("reply %s failed", message_id)
            outcome = ReplyOutcome(Message.Status.FAILED, f"The model failed: {type(exc).__name__}.", "engine_error")
        services.reply_finish(message_id=message_id, status=outcome.status, content=writer.text, seq=writer.next_seq(),
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
        seed=seed,
        max_new_tokens=max_new_tokens,
    )


class _ReplyWriter:
    """Numbers the reply's frames and writes its text deltas, holding back what could be the start of a stop
    sequence until it is known not to be one (so a stop string never reaches the client)."""

    def __init__(self, message_id: int) -> None:
        self.message_id = message_id
        self.stop_sequences: list[str] = []
        self.hold_back = 0
        self.generated = ""  # all text from the engine
        self.sent = 0  # characters of `generated` already written as deltas
        self.seq = 0
        self.stopped_by_sequence = False

    def use_stop_sequences(self, stop_sequences: list[str]) -> None:
        self.stop_sequences = [stop for stop in stop_sequences if stop]
        # A stop sequence can only be recognised once whole: hold back one character less than the longest.
        self.hold_back = max((len(stop) for stop in self.stop_sequences), default=1) - 1

    @property
    def text(self) -> str:
        return self.generated[: self.sent]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def append(self, frame: dict) -> None:
        services.stream_append(message_id=self.message_id, frame=frame)

    def add(self, text: str) -> None:
        if not self.stopped_by_sequence:
            self.generated += text

    def flush(self, *, tokens: int, final: bool) -> None:
        """Write the text that is safe to show as one delta frame."""
        end = len(self.generated) if final else max(self.sent, len(self.generated) - self.hold_back)
        # Every stop sequence starts at or after `sent`: held-back text is what could begin one.
        cuts = [found for stop in self.stop_sequences if (found := self.generated.find(stop, self.sent)) != -1]
        if cuts:
            end = min(cuts)
            self.generated = self.generated[:end]
            self.stopped_by_sequence = True
        if end > self.sent:
            delta: DeltaFrame = {"type": "delta", "message_id": self.message_id, "seq": self.next_seq(),
                                 "text": self.generated[self.sent : end], "tokens": tokens}  # fmt: skip
            self.append(delta)
            self.sent = end


def _stream_reply(engine, reply: Message, writer: _ReplyWriter) -> ReplyOutcome:
    plan = engine.render_chat(selectors.prompt_messages(reply=reply), max_new_tokens=reply.max_new_tokens)
    if plan.truncated_last_turn and reply.origin == Message.Origin.API:
        reason = f"The prompt does not fit in the model's context of {engine.config.max_context} tokens."
        return ReplyOutcome(Message.Status.FAILED, reason, "prompt_too_long")
    params = sampling_params(temperature=reply.temperature, top_p=reply.top_p, seed=reply.seed,
                             max_new_tokens=reply.max_new_tokens, repetition_penalty=reply.repetition_penalty,
                             frequency_penalty=reply.frequency_penalty,
                             presence_penalty=reply.presence_penalty)  # fmt: skip
    events: queue.Queue = queue.Queue()
    handle = engine.submit(plan.token_ids, params, events.put)
    stop_key = reply_stream.stop_key(reply.id)
    client = services.redis_client()
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
            if writer.stopped_by_sequence and final is None:
                handle.cancel()
            if final is None and now >= next_stop_poll:
                next_stop_poll = now + STOP_POLL_INTERVAL_S
                if client.exists(stop_key):
                    handle.cancel()
                elif now > deadline:
                    timed_out = True
                    handle.cancel()
    except BaseException:
        handle.cancel()  # Redis gone mid-reply, or a bug: never leave the engine generating for nobody
        raise
    stats = _stats(final, plan.dropped_turns)
    if writer.stopped_by_sequence:
        return ReplyOutcome(Message.Status.DONE, stats=stats, finish_reason="stop")
    if final.finish_reason == "cancelled":
        reason = "Stopped at the time limit for one reply." if timed_out else "Stopped by the visitor."
        return ReplyOutcome(Message.Status.STOPPED, reason, "time_limit" if timed_out else "", stats, "cancelled")
    if final.finish_reason == "error":
        return ReplyOutcome(Message.Status.FAILED, f"The model failed: {final.error or 'unknown error'}",
                            "engine_error", stats)  # fmt: skip
    return ReplyOutcome(Message.Status.DONE, stats=stats, finish_reason=final.finish_reason)
