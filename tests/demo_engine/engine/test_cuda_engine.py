"""The whole engine on a GPU (`Engine(device="cuda")`): the fp32 path replies as the CPU's fp32 path does, and the
fast path (Q4_1 blocks through the Triton kernels, decode steps replayed as CUDA graphs) picks the fp32 path's argmax
at >= 99% of teacher-forced positions. Skipped, with the reason, on a machine without CUDA; `kernels/gpu_check.sh`
runs it on the first GPU."""

from __future__ import annotations

import pytest
import torch

from demo_engine.engine import SamplingParams
from demo_engine.engine.cuda_graphs import GraphedDecoder

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

QUESTIONS = [
    "What is the capital of France?",
    "Écris deux phrases sur le café et la mer.",
    "用中文介绍一下长城。",
    "Write a Python function that reverses a linked list.",
]
REPLY_TOKENS = 48


@pytest.fixture(scope="module")
def cuda_fp32_engine(var_dir):
    from demo_engine.engine import Engine

    return Engine.load(fp32=True, device="cuda", max_batch=4, max_context=512)


@pytest.fixture(scope="module")
def cuda_fast_engine(var_dir):
    from demo_engine.engine import Engine

    return Engine.load(device="cuda", max_batch=4, max_context=512)


@pytest.fixture(scope="module")
def cpu_replies(fp32_engine) -> dict[str, tuple[list[int], str]]:
    """Per question: the prompt's ids and the CPU fp32 path's greedy reply."""
    replies = {}
    for question in QUESTIONS:
        prompt = fp32_engine.render_chat([{"role": "user", "content": question}], max_new_tokens=REPLY_TOKENS)
        text, _stats = fp32_engine.generate(prompt.token_ids, SamplingParams(greedy=True, max_new_tokens=REPLY_TOKENS))
        replies[question] = (prompt.token_ids, text)
    return replies


def _greedy_together(engine, questions: list[str]) -> dict[str, str]:
    """Greedy replies to all questions submitted at once (one decode batch, padded to a graph bucket)."""
    params = SamplingParams(greedy=True, max_new_tokens=REPLY_TOKENS)
    pieces: dict[str, list[str]] = {q: [] for q in questions}
    engine.start()
    try:
        handles = [
            engine.submit(
                engine.render_chat([{"role": "user", "content": q}], max_new_tokens=REPLY_TOKENS).token_ids,
                params,
                lambda event, q=q: pieces[q].append(event.text),
            )
            for q in questions
        ]
        finals = [handle.wait(timeout=300) for handle in handles]
    finally:
        engine.stop()
    assert all(f is not None and f.finish_reason in ("stop", "length") for f in finals), finals
    return {q: "".join(p) for q, p in pieces.items()}


def test_gpu_fp32_greedy_replies_equal_the_cpu_fp32_path(cpu_replies, cuda_fp32_engine):
    """Four questions answered together on the GPU (fp32, Triton kernels, CUDA graphs) get the CPU fp32 path's
    greedy replies, word for word."""
    want = {question: text for question, (_prompt, text) in cpu_replies.items()}
    got = _greedy_together(cuda_fp32_engine, QUESTIONS)
    assert got == want
    assert cuda_fp32_engine.backend == "GPU · fp32"
    graphed = cuda_fp32_engine.scheduler._graphed
    assert graphed is not None and graphed.replays > 0, "decode steps must replay CUDA graphs"


def test_gpu_fast_path_argmax_agrees_with_the_fp32_path(fp32_engine, cuda_fast_engine, cpu_replies):
    """Teacher-forced on the CPU fp32 path's replies, the GPU fast path (Q4_1 Triton kernels) picks the fp32 argmax
    at >= 99% of all positions: prompt positions through prefill, reply positions through the CUDA-graph decode."""
    fast, exact = cuda_fast_engine.model, fp32_engine.model
    assert cuda_fast_engine.backend == "GPU · Triton"
    agree = total = 0
    with torch.inference_mode():
        for prompt, text in cpu_replies.values():
            reply = fp32_engine.tokenizer.encode(text)
            full = prompt + reply
            ids = torch.tensor(full)
            want = exact.prefill(ids, exact.new_cache(1, len(full)), 0, all_logits=True).argmax(-1)  # (T,)
            cache = fast.new_cache(2, 512)
            decoder = GraphedDecoder(fast, cache, max_batch=1, pad_slot=0)
            got = [fast.prefill(ids[: len(prompt)].cuda(), cache, 1, all_logits=True).argmax(-1).cpu()]
            for position in range(len(prompt), len(full)):
                got.append(decoder.decode([full[position]], [1], [position]).argmax(-1).cpu())
            matches = torch.cat(got) == want
            agree += int(matches.sum())
            total += matches.numel()
            assert decoder.replays == len(reply)
    assert agree / total >= 0.99, f"argmax agreement {agree / total:.4f} over {total} positions"
