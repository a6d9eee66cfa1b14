"""Continuous batching: one thread runs decode steps over every live request, admitting new ones between steps.

Each step: retire cancelled requests (freeing their cache slots), admit queued ones (a slot each), prefill the
admitted prompts (one forward for the next chunk of each, which also yields the first token of those it completes),
then one batched decode forward for all requests past their prompt, then sampling and events. A request's output
does not depend on its neighbours: rows are independent through every matmul, attention runs per request, and each
request samples from its own seeded generator.

A prompt is prefilled in chunks of `model.prefill_chunk` tokens (on the native path; PyTorch's models take a prompt
whole), cut at fixed places from its start, so its numbers do not depend on what else runs: while other replies decode,
a step prefills one chunk (`PREFILL_TOKENS_WHILE_DECODING`) besides their decode rows; an idle engine prefills up to
`PREFILL_TOKENS_PER_STEP` tokens a step.

Chats share their opening turn (the system prompt: 27 of the 46 tokens of a first question), so its keys and
values are computed once and copied into each new request's slot; only the rest of the prompt is prefilled.
A chat prompt is always prefilled in those two parts, whether its opening was cached or not, so the numbers
(and a greedy reply) do not depend on what ran before.

Knows token ids and text deltas (through the tokenizer's stream decoder), not chat turns or Django. Drives either
model (`native_model.NativeModel`, numpy, or `model.LlamaModel`, PyTorch) through the same methods, and imports
PyTorch only for the CUDA graphs.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from demo_engine.engine.sampler import (
    SamplingParams,
    apply_frequency_presence_penalties,
    apply_logit_bias,
    apply_repetition_penalty,
    new_generator,
    sample_next_tokens,
)
from demo_engine.engine.tokenizer import ChatTokenizer, StreamDecoder

if TYPE_CHECKING:
    from demo_engine.engine.model import LlamaModel
    from demo_engine.engine.native_model import NativeModel

logger = logging.getLogger(__name__)

FinishReason = Literal["stop", "length", "cancelled", "error"]
# Prompt tokens prefilled per step at most (beyond the first chunk), so a burst of long prompts does not stall the
# running replies for seconds.
PREFILL_TOKENS_PER_STEP = 1024
# On a model that prefills in chunks (`prefill_chunk`, the native CPU path), a step prefills at most this many prompt
# tokens while other replies are decoding: a long prompt then delays each running reply's next token by the time of
# 128 prompt tokens, step after step, instead of freezing them all for its whole prefill (a 1,561-token prompt on 2
# cores: at most 0.3 s between a running reply's tokens, against 2.5-2.8 s).
PREFILL_TOKENS_WHILE_DECODING = 128
# Distinct opening turns whose keys and values are kept (least recently used dropped first); each is about
# 23 KB per token in bf16.
PREFIX_CACHE_ENTRIES = 8


@dataclass
class RequestStats:
    """Figures of one reply."""

    prompt_tokens: int
    generated_tokens: int
    ttft_s: float | None  # submit -> first token
    decode_tokens_per_s: float | None  # tokens after the first, over the time after the first
    backend: str  # e.g. "CPU · int4 bf16", "GPU · Triton"
    cached_prompt_tokens: int = 0  # prompt tokens whose keys and values came from the shared-prefix cache


@dataclass
class EngineEvent:
    """A text delta (`final` False) or the one final event of a request (`final` True)."""

    request_id: int
    text: str = ""  # the new text; never splits a UTF-8 character
    token_count: int = 0  # tokens generated so far
    final: bool = False
    finish_reason: FinishReason | None = None
    error: str | None = None
    stats: RequestStats | None = None


class RequestHandle:
    """The caller's side of a request: cancel it, wait for its final event. Thread-safe."""

    def __init__(self, request_id: int, scheduler: Scheduler) -> None:
        self.request_id = request_id
        self._scheduler = scheduler
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self.final_event: EngineEvent | None = None

    def cancel(self) -> None:
        """Stop the reply before its next decode step; its cache slot is freed then."""
        self._cancelled.set()
        self._scheduler.wake()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def done(self) -> bool:
        """True once the final event has been delivered."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> EngineEvent | None:
        """The final event, or None if `timeout` seconds pass first."""
        self._done.wait(timeout)
        return self.final_event

    def _finish(self, event: EngineEvent) -> None:
        self.final_event = event
        self._done.set()


@dataclass
class _Request:
    request_id: int
    prompt: list[int]
    params: SamplingParams
    on_event: Callable[[EngineEvent], None]
    handle: RequestHandle
    decoder: StreamDecoder
    generator: Any  # the request's own random generator (numpy's or torch's, see sampler.new_generator); None if greedy
    submitted_at: float
    slot: int = -1
    generated: list[int] = field(default_factory=list)
    seen: set[int] | None = None  # token ids of prompt and reply, kept only for a repetition penalty
    counts: dict[int, int] | None = None  # token id -> times generated, kept only for frequency/presence penalties
    cached_tokens: int = 0  # prompt tokens taken from the shared-prefix cache
    prefilled: int = 0  # prompt tokens whose keys and values are in the slot
    first_token_at: float | None = None
    last_token_at: float | None = None

    @property
    def length(self) -> int:
        """Tokens in the cache once the last generated token is written."""
        return len(self.prompt) + len(self.generated)


class Scheduler:
    """Runs requests to completion on one model, batching their decode steps."""

    def __init__(
        self,
        model: LlamaModel | NativeModel,
        tokenizer: ChatTokenizer,
        *,
        max_batch: int,
        max_context: int,
        threads: int = 2,
    ) -> None:
        self.model = model
        # CPU threads of the scheduler thread's operations (PyTorch's OpenMP team). Measured on this 2-core machine,
        # in the scheduler's thread: 2 threads against 1, a decode step of 1 request 14.7 against 18.5 ms, of 16
        # requests 45 against 72 ms, a prefill of 46 tokens 80 against 141 ms. That holds only while no other thread
        # of the process has run a team of more than one thread: libgomp then has more threads than cores and
        # stops spinning between parallel regions, and the same step of 16 took 64 ms, of 1 request 25 ms, worse
        # than one thread. Hence `Engine.load` leaves its caller on one thread.
        self._threads = threads
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.max_context = max_context
        # On CUDA decode steps replay CUDA graphs (see cuda_graphs), whose padding rows take one more slot of
        # their own, never handed to a request.
        graphed = False
        if model.device_type == "cuda":
            from demo_engine.engine.cuda_graphs import GraphedDecoder, cuda_graphs_enabled

            graphed = cuda_graphs_enabled()
        self.cache = model.new_cache(max_batch + graphed, max_context)
        self._graphed = (
            GraphedDecoder(model, self.cache, max_batch=max_batch, pad_slot=self.cache.allocate()) if graphed else None
        )
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._queue: deque[_Request] = deque()
        self._running: list[_Request] = []
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._step_lock = threading.Lock()  # one step at a time, whether from the thread or an inline caller
        self._token_times: deque[tuple[float, int]] = deque()  # (time, tokens) of recent steps
        self._prefixes: OrderedDict[tuple[int, ...], list[tuple[Any, Any]]] = OrderedDict()  # per layer (k, v)

    # --- the caller's side -------------------------------------------------------------------------------

    def submit(
        self, prompt: list[int], params: SamplingParams, on_event: Callable[[EngineEvent], None]
    ) -> RequestHandle:
        """Queue a request; thread-safe. Events arrive on the scheduler thread."""
        params.validate()
        if not prompt:
            raise ValueError("empty prompt")
        if len(prompt) >= self.max_context:
            raise ValueError(f"prompt of {len(prompt)} tokens does not fit the context of {self.max_context}")
        request_id = next(self._ids)
        handle = RequestHandle(request_id, self)
        generator = None if params.is_greedy else new_generator(params.seed, self.model.array_library)
        request = _Request(
            request_id=request_id,
            prompt=list(prompt),
            params=params,
            on_event=on_event,
            handle=handle,
            decoder=self.tokenizer.stream_decoder(),
            generator=generator,
            submitted_at=time.perf_counter(),
        )
        with self._wakeup:
            self._queue.append(request)
            self._wakeup.notify()
        return handle

    def wake(self) -> None:
        """Nudge the thread (after a cancel)."""
        with self._wakeup:
            self._wakeup.notify()

    def start(self) -> None:
        """Start the background thread."""
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="engine-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; requests still in flight end with finish_reason "cancelled"."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._step_lock:
            for request in list(self._running) + list(self._queue):
                self._finish(request, "cancelled")
            self._queue.clear()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def live_figures(self) -> dict[str, float | int]:
        """Tokens generated per second over the last second, requests in flight and queued."""
        now = time.perf_counter()
        with self._lock:
            tokens = sum(n for t, n in self._token_times if now - t <= 1.0)
            return {"tokens_per_s": float(tokens), "in_flight": len(self._running), "queued": len(self._queue)}

    # --- the scheduler thread ----------------------------------------------------------------------------

    def _loop(self) -> None:
        # The intra-op setting is per OS thread under OpenMP: the PyTorch model's team runs `threads` threads here. (The
        # native model has its own pool, sized at load time, and no PyTorch: when PyTorch's OpenMP worker spun beside
        # the pool's threads, a batch-1 step was 3 to 6 times slower on 2 cores.)
        self.model.use_threads(self._threads)
        while True:
            with self._wakeup:
                while not self._stopping and not self._queue and not self._running:
                    self._wakeup.wait()
                if self._stopping:
                    return
            self.step()

    def has_work(self) -> bool:
        """True while anything is queued or running."""
        with self._lock:
            return bool(self._queue or self._running)

    def step(self) -> None:
        """One scheduling round: retire cancelled, admit, prefill, one decode step."""
        with self._step_lock, self.model.inference_mode():
            try:
                self._retire_cancelled()
                self._admit()
                self._prefill()
                self._decode()
            except Exception as exc:  # a broken step must end its requests with a reason, not hang them
                logger.exception("engine step failed")
                for request in list(self._running):
                    self._finish(request, "error", error=f"{type(exc).__name__}: {exc}")

    def _retire_cancelled(self) -> None:
        for request in list(self._running):
            if request.handle.cancelled:
                self._finish(request, "cancelled")
        with self._lock:
            queued = [r for r in self._queue if r.handle.cancelled]
            for request in queued:
                self._queue.remove(request)
        for request in queued:
            self._finish(request, "cancelled")

    def _admit(self) -> None:
        """Give queued requests a slot each while slots last, with their cached opening turn in it (computed and kept
        when it is new)."""
        admitted: list[_Request] = []
        with self._lock:
            while self._queue and self.cache.free_slots > 0:
                request = self._queue.popleft()
                request.slot = self.cache.allocate()
                self._running.append(request)
                admitted.append(request)
        for request in admitted:
            try:
                opening = self._opening_turn_length(request.prompt)
                if opening:
                    request.cached_tokens = self._prefix_into_slot(request.prompt[:opening], request.slot)
                request.prefilled = opening
                if request.params.repetition_penalty != 1.0:
                    request.seen = set(request.prompt)
                if request.params.penalises_repeats:
                    request.counts = {}
            except Exception as exc:
                logger.exception("prefill failed")
                self._finish(request, "error", error=f"{type(exc).__name__}: {exc}")

    def _prefill(self) -> None:
        """Prefill admitted prompts, the next chunk of each in one forward (oldest first) while the step's budget
        lasts: `PREFILL_TOKENS_WHILE_DECODING` when other replies decode this step, else `PREFILL_TOKENS_PER_STEP`
        (the first chunk always runs). A prompt completed here gets its first token."""
        chunk_size = self.model.prefill_chunk or self.max_context
        decoding = any(r.prefilled == len(r.prompt) for r in self._running)
        budget = PREFILL_TOKENS_WHILE_DECODING if decoding and self.model.prefill_chunk else PREFILL_TOKENS_PER_STEP
        while budget > 0:
            chunks: list[tuple[_Request, int]] = []
            used = 0
            for request in self._running:
                if request.prefilled == len(request.prompt) or request.handle.cancelled:
                    continue
                size = min(chunk_size, len(request.prompt) - request.prefilled)
                if chunks and used + size > budget:
                    break
                chunks.append((request, size))
                used += size
            if not chunks:
                return
            budget -= used
            try:
                prompts = [self.model.ids(r.prompt[r.prefilled : r.prefilled + n]) for r, n in chunks]
                starts = [r.prefilled for r, _n in chunks]
                logits = self.model.prefill_many(prompts, self.cache, [r.slot for r, _n in chunks], starts)  # (N, V)
                for request, size in chunks:
                    request.prefilled += size
                done = [index for index, (r, _n) in enumerate(chunks) if r.prefilled == len(r.prompt)]
                if done:
                    self._sample_and_emit([chunks[index][0] for index in done], logits[done])
            except Exception as exc:
                logger.exception("prefill failed")
                for request, _n in chunks:
                    self._finish(request, "error", error=f"{type(exc).__name__}: {exc}")

    def _opening_turn_length(self, prompt: list[int]) -> int:
        """Tokens of a ChatML prompt's first turn (`<|im_start|>` … `<|im_end|>` and its newline); 0 when the
        prompt does not start with a turn, or holds nothing after it."""
        if prompt[0] != self.tokenizer.bos_id or self.tokenizer.eos_id not in prompt:
            return 0
        length = prompt.index(self.tokenizer.eos_id) + 2
        return length if length < len(prompt) else 0

    def _prefix_into_slot(self, prefix: list[int], slot: int) -> int:
        """Positions 0..len(prefix)-1 of `slot` hold the prefix's keys and values afterwards: copied from the
        prefix cache (returns how many tokens that saved), or computed and then kept (returns 0)."""
        key = tuple(prefix)
        stored = self._prefixes.get(key)
        if stored is not None:
            self._prefixes.move_to_end(key)
            self.cache.write_prefix(slot, stored)
            return len(prefix)
        self.model.prefill(self.model.ids(prefix), self.cache, slot)
        self._prefixes[key] = self.cache.read_prefix(slot, len(prefix))
        if len(self._prefixes) > PREFIX_CACHE_ENTRIES:
            self._prefixes.popitem(last=False)
        return 0

    def _decode(self) -> None:
        batch = [r for r in self._running if r.generated and not r.handle.cancelled]
        if not batch:
            return
        if self._graphed is not None:
            rows = [r.generated[-1] for r in batch], [r.slot for r in batch], [r.length - 1 for r in batch]
            self._sample_and_emit(batch, self._graphed.decode(*rows))  # (B, V)
            return
        tokens = self.model.ids([r.generated[-1] for r in batch])
        slots = self.model.ids([r.slot for r in batch])
        positions = self.model.ids([r.length - 1 for r in batch])
        logits = self.model.decode(tokens, self.cache, slots, positions)  # (B, V)
        self._sample_and_emit(batch, logits)

    def _sample_and_emit(self, batch: list[_Request], logits: Any) -> None:
        if any(r.seen is not None for r in batch):
            apply_repetition_penalty(logits, [r.seen for r in batch], [r.params.repetition_penalty for r in batch])
        if any(r.counts for r in batch):
            apply_frequency_presence_penalties(logits, [r.counts for r in batch], [r.params for r in batch])
        if any(r.params.logit_bias for r in batch):
            apply_logit_bias(logits, [r.params for r in batch])
        next_ids = sample_next_tokens(logits, [r.params for r in batch], [r.generator for r in batch]).tolist()
        now = time.perf_counter()
        with self._lock:
            self._token_times.append((now, len(batch)))
            while self._token_times and now - self._token_times[0][0] > 2.0:
                self._token_times.popleft()
        for request, token in zip(batch, next_ids, strict=True):
            if request.first_token_at is None:
                request.first_token_at = now
            request.last_token_at = now
            if token == self.tokenizer.eos_id and not request.params.ignore_eos:
                self._finish(request, "stop")
                continue
            request.generated.append(token)
            if request.seen is not None:
                request.seen.add(token)
            if request.counts is not None:
                request.counts[token] = request.counts.get(token, 0) + 1
            text = request.decoder.push(token)
            if text:
                self._emit(request, EngineEvent(request.request_id, text=text, token_count=len(request.generated)))
            if len(request.generated) >= request.params.max_new_tokens or request.length >= self.max_context:
                self._finish(request, "length")

    def _emit(self, request: _Request, event: EngineEvent) -> None:
        try:
            request.on_event(event)
        except Exception:  # a caller's broken callback must not take the batch down
            logger.exception("on_event callback failed for request %s", request.request_id)

    def _finish(self, request: _Request, reason: FinishReason, *, error: str | None = None) -> None:
        """Free the slot, flush pending text, and deliver the one final event."""
        with self._lock:
            if request in self._running:
                self._running.remove(request)
            if request.slot >= 0:
                self.cache.release(request.slot)
                request.slot = -1
        if request.handle.done:
            return
        # Bytes still held by the stream decoder are an unfinished character (a reply cut by max_new_tokens
        # mid-emoji): they are dropped rather than shown as U+FFFD.
        generated = len(request.generated)
        ttft = request.first_token_at - request.submitted_at if request.first_token_at is not None else None
        decode_rate = None
        if request.first_token_at is not None and request.last_token_at is not None and generated > 1:
            elapsed = request.last_token_at - request.first_token_at
            decode_rate = (generated - 1) / elapsed if elapsed > 0 else None
        stats = RequestStats(
            prompt_tokens=len(request.prompt),
            generated_tokens=generated,
            ttft_s=ttft,
            decode_tokens_per_s=decode_rate,
            backend=self.model.kernel_label,
            cached_prompt_tokens=request.cached_tokens,
        )
        event = EngineEvent(
            request.request_id, token_count=generated, final=True, finish_reason=reason, error=error, stats=stats
        )
        self._emit(request, event)
        request.handle._finish(event)
