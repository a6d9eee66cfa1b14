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

from django.conf import settings

from demo_engine import reply_stream, runtime, selectors, services
from demo_engine.models import Message
from demo_engine.protocol import DeltaFrame, ReplyStats, StatusFrame

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


def reply_generate(*, message_id: int) -> None:
    """Generate and stream one reply. Never raises for a generation problem: the reply ends `failed` instead."""
    if not services.reply_start(message_id=message_id):
        return  # stopped, failed or taken while it waited: never run a reply twice
    seq = 0
    text_sent: list[str] = []

    def append(frame: dict) -> None:
        services.stream_append(message_id=message_id, frame=frame)

    with _Heartbeat(message_id):
        try:
            seq += 1
            started: StatusFrame = {"type": "status", "message_id": message_id, "seq": seq, "status": "streaming"}
            append(started)
            reply = Message.objects.get(id=message_id)
            engine = runtime.get_engine()
            status, reason, stats, seq = _stream_reply(engine, reply, seq, text_sent, append)
        except Exception as exc:
            logger.exception("reply %s failed", message_id)
            status, reason, stats = Message.Status.FAILED, f"The model failed: {type(exc).__name__}.", None
        services.reply_finish(message_id=message_id, status=status, content="".join(text_sent), seq=seq + 1,
                              reason=reason, stats=stats, from_statuses=(Message.Status.STREAMING,))  # fmt: skip


def sampling_params(*, temperature: float, seed: int | None, max_new_tokens: int):
    """The engine's sampling for a chat reply: the visitor's choices plus the site's top-p and repetition penalty."""
    from demo_engine.engine import SamplingParams

    return SamplingParams(
        temperature=temperature,
        top_p=settings.CHAT_TOP_P,
        repetition_penalty=settings.CHAT_REPETITION_PENALTY,
        seed=seed,
        max_new_tokens=max_new_tokens,
    )


def _stream_reply(engine, reply: Message, seq: int, text_sent: list[str], append) -> tuple:
    plan = engine.render_chat(selectors.prompt_messages(reply=reply), max_new_tokens=reply.max_new_tokens)
    params = sampling_params(temperature=reply.temperature, seed=reply.seed, max_new_tokens=reply.max_new_tokens)
    events: queue.Queue = queue.Queue()
    handle = engine.submit(plan.token_ids, params, events.put)
    stop_key = reply_stream.stop_key(reply.id)
    client = services.redis_client()
    deadline = time.monotonic() + settings.CHAT_GENERATION_TIME_LIMIT_S
    pending: list[str] = []
    tokens = 0
    last_flush = 0.0
    next_stop_poll = 0.0
    final = None
    reason = ""
    try:
        while final is None:
            try:
                event = events.get(timeout=0.02)
            except queue.Empty:
                event = None
            while event is not None:
                if event.final:
                    final = event
                    break
                pending.append(event.text)
                tokens = event.token_count
                event = events.get_nowait() if not events.empty() else None
            now = time.monotonic()
            if pending and (final is not None or not text_sent or now - last_flush >= FLUSH_INTERVAL_S):
                text = "".join(pending)
                pending.clear()
                last_flush = now
                if text:
                    seq += 1
                    delta: DeltaFrame = {"type": "delta", "message_id": reply.id, "seq": seq, "text": text,
                                         "tokens": tokens}  # fmt: skip
                    append(delta)
                    text_sent.append(text)
            if final is None and now >= next_stop_poll:
                next_stop_poll = now + STOP_POLL_INTERVAL_S
                if client.exists(stop_key):
                    handle.cancel()
                elif now > deadline:
                    reason = "Stopped at the time limit for one reply."
                    handle.cancel()
    except BaseException:
        handle.cancel()  # Redis gone mid-reply, or a bug: never leave the engine generating for nobody
        raise
    if final.finish_reason == "cancelled":
        status = Message.Status.STOPPED
        reason = reason or "Stopped by the visitor."
    elif final.finish_reason == "error":
        status = Message.Status.FAILED
        reason = f"The model failed: {final.error or 'unknown error'}"
    else:
        status = Message.Status.DONE
    return status, reason, _stats(final, plan.dropped_turns), seq
