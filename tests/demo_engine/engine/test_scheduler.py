"""Continuous batching: batch invariance, cancellation, streaming events and stop conditions."""

from __future__ import annotations

import threading

import pytest

from demo_engine.engine import EngineEvent, SamplingParams

QUESTIONS = [
    "Hi!",
    "What is the capital of France?",
    "Name three colours.",
    "Explain in one sentence what a GPU does, for a visitor at a technology fair in Shanghai.",
    "Écris une phrase sur Paris.",
    "用一句话介绍上海。",
    "Give me a short list of fruits 🍎.",
    "What is 2 + 2? Answer with the number and a brief explanation of how addition works for children.",
]


def _greedy(max_new_tokens: int) -> SamplingParams:
    return SamplingParams(greedy=True, repetition_penalty=1.0, max_new_tokens=max_new_tokens)


def _run_concurrently(engine, prompts, params, cancel_index=None, cancel_after=5):
    """Submit all prompts at once to the running scheduler; returns (texts, final events)."""
    texts = [[] for _ in prompts]
    handles = []
    cancelled_at = threading.Event()

    def make_callback(index):
        def on_event(event: EngineEvent) -> None:
            texts[index].append(event.text)
            if index == cancel_index and not event.final and event.token_count >= cancel_after:
                handles[index].cancel()
                cancelled_at.set()

        return on_event

    engine.start()
    try:
        for index, prompt in enumerate(prompts):
            handles.append(engine.submit(prompt, params, make_callback(index)))
        finals = [handle.wait(timeout=120) for handle in handles]
    finally:
        engine.stop()
    return ["".join(t) for t in texts], finals


@pytest.mark.slow
def test_concurrent_greedy_requests_match_each_alone(fp32_engine):
    """On the fp32 path, 8 concurrent greedy requests of different lengths each give exactly their solo output."""
    prompts = [
        fp32_engine.render_chat([{"role": "user", "content": q}], max_new_tokens=16).token_ids for q in QUESTIONS
    ]
    assert len({len(p) for p in prompts}) > 4  # genuinely different lengths
    alone = [fp32_engine.generate(prompt, _greedy(16))[0] for prompt in prompts]
    together, finals = _run_concurrently(fp32_engine, prompts, _greedy(16))
    assert together == alone
    assert all(f.finish_reason in ("stop", "length") for f in finals)

    # Cancelling one mid-way: it ends "cancelled", its slot is free again, and the others are unchanged.
    together, finals = _run_concurrently(fp32_engine, prompts, _greedy(16), cancel_index=3, cancel_after=5)
    assert finals[3].finish_reason == "cancelled"
    assert finals[3].stats.generated_tokens < 16
    assert together[:3] + together[4:] == alone[:3] + alone[4:]
    assert fp32_engine.scheduler.cache.free_slots == fp32_engine.config.max_batch


def test_stop_at_im_end_and_max_new_tokens(fast_engine):
    """A reply ends "stop" at <|im_end|> (which is not shown) or "length" at max_new_tokens, with figures filled in."""
    plan = fast_engine.render_chat([{"role": "user", "content": "What is the capital of France?"}], max_new_tokens=64)
    text, stats = fast_engine.generate(plan.token_ids, _greedy(64))
    assert "Paris" in text and "<|im_end|>" not in text
    assert stats.generated_tokens < 64 and stats.prompt_tokens == len(plan.token_ids)
    assert stats.ttft_s is not None and stats.ttft_s > 0
    events: list[EngineEvent] = []
    text, stats = fast_engine.generate(plan.token_ids, _greedy(3), on_event=events.append)
    assert stats.generated_tokens == 3
    assert [e.finish_reason for e in events if e.final] == ["length"]
    assert sum(1 for e in events if e.final) == 1


def test_streamed_deltas_are_whole_characters(fast_engine):
    """Streaming a reply with Chinese characters: every delta is valid text, and the deltas add up to the reply."""
    question = 'Translate "thank you" into Chinese and Japanese.'
    plan = fast_engine.render_chat([{"role": "user", "content": question}], max_new_tokens=24)
    events: list[EngineEvent] = []
    text, _ = fast_engine.generate(plan.token_ids, _greedy(24), on_event=events.append)
    deltas = [e.text for e in events if not e.final and e.text]
    assert "".join(deltas) == text
    assert all("\ufffd" not in d for d in deltas)
    assert any(ord(ch) > 0x2E80 for ch in text)  # the reply did contain CJK or emoji
    counts = [e.token_count for e in events if not e.final]
    assert counts == sorted(counts)


def test_cancel_before_start_frees_everything(fast_engine):
    """A request cancelled while still queued ends "cancelled" without generating, and holds no cache slot."""
    handle = fast_engine.submit([1, 2, 3], _greedy(8), lambda event: None)
    handle.cancel()
    while not handle.done:
        fast_engine.scheduler.step()
    final = handle.wait(1)
    assert final.finish_reason == "cancelled" and final.stats.generated_tokens == 0
    assert fast_engine.scheduler.cache.free_slots == fast_engine.config.max_batch


def test_live_figures_report_recent_throughput(fast_engine):
    """live_figures() counts tokens generated in the last second and what is in flight."""
    fast_engine.generate([1, 9093, 198], _greedy(6))
    figures = fast_engine.live_figures()
    assert figures["tokens_per_s"] > 0
    assert figures["in_flight"] == 0 and figures["queued"] == 0


def test_a_shared_opening_turn_is_computed_once_and_changes_no_reply(fast_engine):
    """The system turn's keys and values are reused by the next chat that opens with it (the figures say how
    many prompt tokens came from the cache), and a reply is the same whether its opening was cached or not."""
    system = {"role": "system", "content": "You are the guide of booth B-17 at WAIC. Answer in one sentence."}
    first = fast_engine.render_chat([system, {"role": "user", "content": "Name three colours."}], max_new_tokens=12)
    other = fast_engine.render_chat([system, {"role": "user", "content": "What is 2 + 2?"}], max_new_tokens=12)
    text_cold, stats_cold = fast_engine.generate(first.token_ids, _greedy(12))
    _, stats_other = fast_engine.generate(other.token_ids, _greedy(12))
    text_warm, stats_warm = fast_engine.generate(first.token_ids, _greedy(12))
    opening = first.token_ids.index(fast_engine.tokenizer.eos_id) + 2
    assert stats_cold.cached_prompt_tokens == 0
    assert stats_other.cached_prompt_tokens == stats_warm.cached_prompt_tokens == opening
    assert text_warm == text_cold and text_cold


def test_a_prompt_without_an_opening_turn_is_prefilled_whole(fast_engine):
    """Raw token ids (no ChatML turn) bypass the prefix cache."""
    _, stats = fast_engine.generate([5, 6, 7, 8], _greedy(2))
    assert stats.cached_prompt_tokens == 0


def _long_and_short_chats(engine, story: str, short_tokens: int) -> tuple[list[int], list[int]]:
    """Token ids of a chat asking `story` (hundreds of tokens) and of a short question, for a model that prefills in
    chunks (skips on the PyTorch fallback, which prefills a prompt whole: there is nothing to chunk)."""
    if not engine.model.prefill_chunk:
        pytest.skip("this model prefills a prompt whole (the PyTorch fallback, no native kernels here)")
    long_ids = engine.render_chat([{"role": "user", "content": story}], max_new_tokens=8).token_ids
    short_ids = engine.render_chat([{"role": "user", "content": "Name three colours."}], max_new_tokens=short_tokens)
    return long_ids, short_ids.token_ids


def test_a_long_prompt_is_prefilled_in_chunks_between_the_running_replies_steps(fast_engine):
    """A 600-token prompt that arrives while another reply decodes is prefilled one chunk (at most 128 tokens) a step
    beside that reply's decode rows, so the running reply keeps getting a token every step instead of waiting for the
    whole prefill; both replies are token for token what each gets alone (a chunk's rows get the numbers they get
    in a whole prompt)."""
    scheduler, model = fast_engine.scheduler, fast_engine.model
    story = "At the booth, a robot explains how chips are cooled and why memory bandwidth matters. " * 36
    long_ids, short_ids = _long_and_short_chats(fast_engine, story, 40)
    assert len(long_ids) > 600
    alone = [fast_engine.generate(ids, _greedy(n))[0] for ids, n in ((short_ids, 40), (long_ids, 8))]

    steps = []  # per step: prefill rows, decode rows
    prefill_many, decode = model.prefill_many, model.decode

    def counting_prefill(prompts, *args, **kwargs):
        steps[-1][0] += sum(len(p) for p in prompts)
        return prefill_many(prompts, *args, **kwargs)

    def counting_decode(token_ids, *args, **kwargs):
        steps[-1][1] += len(token_ids)
        return decode(token_ids, *args, **kwargs)

    texts = [[], []]
    model.prefill_many, model.decode = counting_prefill, counting_decode
    try:
        short = scheduler.submit(short_ids, _greedy(40), lambda event: texts[0].append(event.text))
        for _ in range(3):  # the short reply is prefilled and decoding
            steps.append([0, 0])
            scheduler.step()
        long = scheduler.submit(long_ids, _greedy(8), lambda event: texts[1].append(event.text))
        while not (short.done and long.done):
            steps.append([0, 0])
            scheduler.step()
    finally:
        model.prefill_many, model.decode = prefill_many, decode
    during = [prefill for prefill, decoded in steps[3:] if prefill and decoded]
    assert len(during) >= 4 and max(during) <= 128  # the long prompt in chunks, each beside a decode step
    assert all(decoded for _prefill, decoded in steps[:20])  # the short reply never waited a step
    assert ["".join(t) for t in texts] == alone
    assert long.wait(1).stats.prompt_tokens == len(long_ids)


def test_a_prompt_cancelled_between_its_chunks_ends_cancelled_and_frees_its_slot(fast_engine):
    """A long prompt cancelled after its first chunk, while another reply decodes, is prefilled no further, ends
    "cancelled" with no token, and frees its slot; the other reply is untouched."""
    scheduler = fast_engine.scheduler
    long_ids, short_ids = _long_and_short_chats(
        fast_engine, "A robot at the booth explains how the chips are cooled. " * 40, 24
    )
    alone = fast_engine.generate(short_ids, _greedy(24))[0]
    texts = []
    short = scheduler.submit(short_ids, _greedy(24), lambda event: texts.append(event.text))
    scheduler.step()
    long = scheduler.submit(long_ids, _greedy(8), lambda event: None)
    scheduler.step()  # the long prompt's first chunk
    request = next(r for r in scheduler._running if r.handle is long)
    assert 0 < request.prefilled < len(long_ids)
    long.cancel()
    while not (short.done and long.done):
        scheduler.step()
    final = long.wait(1)
    assert final.finish_reason == "cancelled" and final.stats.generated_tokens == 0
    assert request.prefilled < len(long_ids)
    assert "".join(texts) == alone
    assert scheduler.cache.free_slots == fast_engine.config.max_batch


def test_a_prefill_that_fails_ends_its_requests_with_the_error_and_frees_their_slots(fast_engine):
    """When the forward of a prefill raises, the requests in it end "error" with the reason, their slots are free,
    and the engine serves the next request as usual."""
    scheduler, model = fast_engine.scheduler, fast_engine.model
    prefill_many = model.prefill_many

    def broken(*args, **kwargs):
        raise RuntimeError("the kernels are gone")

    model.prefill_many = broken
    try:
        handle = scheduler.submit([1, 9093, 198, 5, 6], _greedy(4), lambda event: None)
        while not handle.done:
            scheduler.step()
    finally:
        model.prefill_many = prefill_many
    final = handle.wait(1)
    assert final.finish_reason == "error" and "the kernels are gone" in final.error
    assert scheduler.cache.free_slots == fast_engine.config.max_batch
    text, stats = fast_engine.generate([1, 9093, 198, 5, 6], _greedy(4))
    assert stats.generated_tokens == 4
