"""The CUDA-graph decode (`cuda_graphs`) and the GPU benchmark's dense bf16 baseline, checked on the CPU.

What a CPU can check: the buckets, the padding, and that a padded step on the graph's static buffers computes the
same logits as the plain decode and leaves every live request's cache as the plain decode does (`capture=False` runs
exactly the code that is captured on CUDA, without the capture). The capture and replay themselves need a GPU: see
tests/demo_engine/engine/test_cuda_engine.py.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from demo_engine.engine import SamplingParams, cuda_graphs
from demo_engine.engine.model import DenseLinear, LlamaModel
from demo_engine.engine.scheduler import Scheduler
from kernels import dispatch, reference
from tests.demo_engine.engine.test_kernels_in_engine import TINY, run_forward, tiny_model


def test_buckets_are_powers_of_two_up_to_the_batch_limit():
    """Graphs exist for 1, 2, 4, ... and for max_batch itself; a batch replays the smallest bucket that holds it."""
    assert cuda_graphs.batch_buckets(16) == (1, 2, 4, 8, 16)
    assert cuda_graphs.batch_buckets(12) == (1, 2, 4, 8, 12)
    assert cuda_graphs.batch_buckets(1) == (1,)
    buckets = cuda_graphs.batch_buckets(12)
    assert [cuda_graphs.bucket_for(b, buckets) for b in (1, 2, 3, 5, 8, 9, 12)] == [1, 2, 4, 8, 8, 12, 12]
    with pytest.raises(ValueError):
        cuda_graphs.bucket_for(13, buckets)


def test_padding_rows_go_to_the_padding_slot_only():
    """Padding decodes token 0 at position 0 of the padding slot; a request may never sit in that slot."""
    assert cuda_graphs.pad_rows([5, 6, 7], [1, 2, 3], [10, 4, 8], 4, pad_slot=0) == (
        [5, 6, 7, 0],
        [1, 2, 3, 0],
        [10, 4, 8, 0],
    )
    with pytest.raises(ValueError):
        cuda_graphs.pad_rows([5], [0], [3], 2, pad_slot=0)


def _prefilled(model: LlamaModel, num_slots: int):
    """A cache with three prompts of different lengths in slots 1, 2, 3 (slot 0 stays empty: the padding slot)."""
    cache = model.new_cache(num_slots=num_slots, max_len=16)
    prompts = {1: [5, 17, 3, 99, 42], 2: [7], 3: [8, 61, 11]}
    with dispatch.use_backend("torch"):
        for slot, prompt in prompts.items():
            model.prefill(torch.tensor(prompt), cache, slot)
    return cache, prompts


def test_a_padded_step_on_static_buffers_equals_the_plain_decode():
    """Three rows in the bucket of four: the logits of the real rows equal the plain decode's, every request's cache
    slot ends as with the plain decode, and the padding wrote only into position 0 of the padding slot."""
    model = tiny_model(torch.float32)
    plain_cache, prompts = _prefilled(model, 5)
    graph_cache, _ = _prefilled(model, 5)
    pad_slot = graph_cache.allocate()
    assert pad_slot == 0
    decoder = cuda_graphs.GraphedDecoder(model, graph_cache, max_batch=4, pad_slot=pad_slot, capture=False)
    slots, tokens = [1, 2, 3], [23, 77, 2]
    positions = [len(prompts[slot]) for slot in slots]
    with dispatch.use_backend("torch"), torch.inference_mode():
        want = model.decode(torch.tensor(tokens), plain_cache, torch.tensor(slots), torch.tensor(positions))
        got = decoder.decode(tokens, slots, positions)
    assert got.shape == (3, TINY.vocab_size)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for layer in range(TINY.n_layers):
        for plain, graphed in zip(plain_cache.layer(layer), graph_cache.layer(layer), strict=True):
            torch.testing.assert_close(graphed[1:], plain[1:], atol=1e-6, rtol=1e-6)
            assert graphed[0, :, 1:].abs().sum() == 0 and graphed[0, :, 0].abs().sum() > 0


def test_one_row_replays_the_bucket_of_one():
    """A single request uses the smallest bucket and gets the plain decode's logits."""
    model = tiny_model(torch.float32)
    plain_cache, prompts = _prefilled(model, 4)
    graph_cache, _ = _prefilled(model, 4)
    decoder = cuda_graphs.GraphedDecoder(model, graph_cache, max_batch=3, pad_slot=0, capture=False)
    with dispatch.use_backend("torch"), torch.inference_mode():
        want = model.decode(torch.tensor([4]), plain_cache, torch.tensor([2]), torch.tensor([1]))
        got = decoder.decode([4], [2], [1])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_the_cpu_scheduler_has_no_graphs_and_no_extra_slot():
    """On the CPU the scheduler decodes as before: no graphed decoder, and every cache slot is for requests."""
    scheduler = Scheduler(tiny_model(torch.float32), None, max_batch=4, max_context=16)  # type: ignore[arg-type]
    assert scheduler._graphed is None
    assert scheduler.cache.num_slots == 4 and scheduler.cache.free_slots == 4


def _greedy_replies(scheduler: Scheduler, prompts: list[list[int]], tokens: int) -> list[str]:
    """Greedy replies of prompts submitted together, the scheduler stepped in this thread."""
    pieces: list[list[str]] = [[] for _ in prompts]
    params = SamplingParams(greedy=True, max_new_tokens=tokens, ignore_eos=True)
    handles = [
        scheduler.submit(prompt, params, lambda event, i=i: pieces[i].append(event.text))
        for i, prompt in enumerate(prompts)
    ]
    while scheduler.has_work():
        scheduler.step()
    assert [h.final_event.finish_reason for h in handles] == ["length"] * len(prompts)
    return ["".join(p) for p in pieces]


def test_the_scheduler_on_the_graphed_decoder_replies_as_without_it(fp32_engine):
    """Three chats decoded together through the graphed decoder (the scheduler's CUDA path, set up as
    Scheduler.__init__ does on CUDA, run without capture on the CPU: bucket of four, a padding slot) get the plain
    scheduler's greedy replies, and the padding slot is never handed to a request."""
    model, tokenizer = fp32_engine.model, fp32_engine.tokenizer
    questions = ["What is the capital of France?", "Name a colour.", "Écris une phrase sur la mer."]
    prompts = [fp32_engine.render_chat([{"role": "user", "content": q}], max_new_tokens=8).token_ids for q in questions]
    plain = Scheduler(model, tokenizer, max_batch=4, max_context=256)
    graphed = Scheduler(model, tokenizer, max_batch=4, max_context=256)
    graphed.cache = model.new_cache(4 + 1, 256)
    pad_slot = graphed.cache.allocate()
    graphed._graphed = cuda_graphs.GraphedDecoder(model, graphed.cache, max_batch=4, pad_slot=pad_slot, capture=False)
    assert _greedy_replies(graphed, prompts, 8) == _greedy_replies(plain, prompts, 8)
    assert graphed._graphed.steps == 7  # the first token comes from the prefill, 7 decode steps follow
    assert graphed.cache.free_slots == 4 and pad_slot not in [graphed.cache.allocate() for _ in range(4)]


@pytest.mark.parametrize("value", ["off", "0", "false"])
def test_cuda_graphs_can_be_turned_off(monkeypatch, value):
    """ENGINE_CUDA_GRAPHS=off (or 0, false) runs CUDA decode steps eagerly; unset, graphs are on."""
    monkeypatch.delenv("ENGINE_CUDA_GRAPHS", raising=False)
    assert cuda_graphs.cuda_graphs_enabled()
    monkeypatch.setenv("ENGINE_CUDA_GRAPHS", value)
    assert not cuda_graphs.cuda_graphs_enabled()


def _dense_bf16(model: LlamaModel) -> LlamaModel:
    """The same tiny model as the bench's baseline: weights dequantized once to dense bf16."""
    model.mode = "bf16"
    for layer in model.layers:
        for name in ("qkv", "out", "gate_up", "down"):
            linear = getattr(layer, name)
            weight = reference.q4_1_dequantize(linear.blocks, linear.n_out, linear.n_in)
            setattr(layer, name, DenseLinear(weight.to(torch.bfloat16)))
    return model


def test_the_baseline_attention_is_sdpa_with_the_same_maths(monkeypatch):
    """The bf16 baseline's decode attention (SDPA over the gathered slots, masked to each length) equals the
    reference decode attention, grouped-query heads included, without going through the kernels' dispatch."""
    monkeypatch.setattr(dispatch, "decode_attention", lambda *a: pytest.fail("the baseline called the dispatch"))
    model = _dense_bf16(tiny_model(torch.bfloat16))
    q = torch.randn(3, TINY.n_heads, TINY.head_dim)
    k_cache, v_cache = torch.randn(4, TINY.n_kv_heads, 16, TINY.head_dim), torch.randn(4, TINY.n_kv_heads, 16, 32)
    slots, seq_lens = torch.tensor([2, 0, 3]), torch.tensor([16, 1, 7], dtype=torch.int32)
    got = model._decode_attention(q, k_cache, v_cache, slots, seq_lens)
    want = reference.decode_attention(q, k_cache, v_cache, slots, seq_lens, model.scale)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_the_dense_bf16_baseline_computes_the_same_model():
    """The baseline (dense bf16 weights, PyTorch ops) gives the 4-bit model's logits to bf16 precision: it is the
    same model, so the bench compares speed, not different maths."""
    want = run_forward(tiny_model(torch.bfloat16), "torch")
    model = _dense_bf16(tiny_model(torch.bfloat16))
    assert model.kernel_label == "CPU · bf16 dense PyTorch"
    got = run_forward(model, "torch")
    torch.testing.assert_close(got, want, atol=0.75, rtol=0.02)
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() >= 0.9


class _HostReads(TorchDispatchMode):
    """Records the operators that read a tensor's values back to the host (on CUDA, each a sync, and illegal in a
    graph capture): `.item()`, `int(t)` and `bool(t)` (`item`, `is_nonzero`, or `_local_scalar_dense` outside
    inference mode), and those whose output size depends on values."""

    READS = {"item", "is_nonzero", "_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2"}

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._schema.name.split("::")[-1] in self.READS:
            self.seen.append(func._schema.name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("weights", ["q4_1", "bf16 dense"])
def test_a_graphed_step_reads_nothing_back_from_the_device(weights):
    """The step the graphs capture (the model's decode with the attention span fixed), of the fast path and of the
    bf16 baseline, reads no value back to the host, where the plain decode reads the longest length back once
    (`int(seq_lens.max())`): the operators are recorded as they run, here on the CPU with the reference kernels (the
    Triton launchers issue no such reads)."""
    model = tiny_model(torch.float32) if weights == "q4_1" else _dense_bf16(tiny_model(torch.bfloat16))
    cache, prompts = _prefilled(model, 4)
    decoder = cuda_graphs.GraphedDecoder(model, cache, max_batch=4, pad_slot=0, capture=False)
    with dispatch.use_backend("torch"), torch.inference_mode():
        with _HostReads() as graphed:
            decoder.decode([23, 77, 2], [1, 2, 3], [len(prompts[s]) for s in (1, 2, 3)])
        with _HostReads() as plain:
            model.decode(torch.tensor([4]), cache, torch.tensor([1]), torch.tensor([6]))
    assert graphed.seen == []
    assert plain.seen == ["aten::item"]
