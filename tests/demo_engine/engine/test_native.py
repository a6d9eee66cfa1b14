"""The native CPU kernels (`ENGINE_NATIVE_CPU`, the default where they build): exact integer maths, a decode step that
agrees with the prefill, batch invariance, the backend string, and no PyTorch in an engine process on this path.
Skipped where they cannot build. The native path's arrays are numpy's; the tests compare them as tensors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from demo_engine.engine import Engine, SamplingParams, native
from demo_engine.engine.gguf_loader import GGUFFile, q4_1_blocks, q4_1_dequantize, q8_0_unpack
from demo_engine.engine.model import HEAD_REFINE_TOP


def _native_or_skip(wanted: str) -> native.NativeCPU:
    lib = native.load(1, wanted)
    if lib is None:
        pytest.skip(f"native CPU kernels ({wanted}) cannot run here (no AVX2/compiler)")
    return lib


@pytest.fixture(scope="module")
def ffn_blocks(gguf_path: str) -> np.ndarray:
    """A real Q4_1 weight of the model: block 3's gate projection (1536 x 576)."""
    gguf_file = GGUFFile(gguf_path)
    tensor = next(t for t in gguf_file.tensors() if t.name == "blk.3.ffn_gate.weight")
    return q4_1_blocks(tensor)


@pytest.fixture(scope="module")
def native_engine(var_dir):
    """The engine with the native kernels on, if they build here."""
    _native_or_skip("on")
    return Engine.load(max_batch=16, max_context=1024, native_cpu="on")


def _int16_exact_rows(rows: int, n_in: int) -> torch.Tensor:
    """Activations whose quantization to int16 per block of 32 is exact: integer codes times a power-of-two block
    scale, with one code at 32767 in every block so that the scale is recovered exactly."""
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(-32767, 32768, (rows, n_in // 32, 32), generator=generator).float()
    codes[..., 0] = 32767.0
    scales = 2.0 ** torch.randint(-14, -6, (rows, n_in // 32, 1), generator=generator).float()
    return (codes * scales).reshape(rows, n_in)


@pytest.mark.parametrize("wanted", ["on", "avx2"])
@pytest.mark.parametrize(("name", "n_in"), [("blk.3.ffn_gate.weight", 576), ("blk.3.ffn_down.weight", 1536)])
def test_native_matmul_is_exact_when_activations_are_int16(gguf_path, name, n_in, wanted):
    """With activations that int16 blocks represent exactly, the native Q4_1 matmul equals x @ W.T of the dequantized
    weights to float rounding, for 1, 5, 16 and 19 rows, on the AVX-512 and the AVX2 build, for both input widths."""
    lib = _native_or_skip(wanted)
    blocks = q4_1_blocks(next(t for t in GGUFFile(gguf_path).tensors() if t.name == name))
    linear = native.NativeLinear(lib, blocks, n_in)
    weight = torch.from_numpy(q4_1_dequantize(blocks)).double()  # (N, K)
    for rows in (1, 5, 16, 19):
        x = _int16_exact_rows(rows, n_in)
        expected = x.double() @ weight.T
        got = torch.from_numpy(linear(x.numpy())).double()
        assert (got - expected).abs().max().item() <= 1e-5 * expected.abs().max().item()


@pytest.mark.parametrize("wanted", ["on", "avx2"])
def test_native_matmul_error_is_that_of_16_bit_activations(ffn_blocks, wanted):
    """On ordinary activations the result is within 1e-4 of the exact product (relative; the int16 rounding of the
    input is about 2e-5), where int8 activations were off by about 0.5%."""
    linear = native.NativeLinear(_native_or_skip(wanted), ffn_blocks, 576)
    x = torch.randn(4, 576, generator=torch.Generator().manual_seed(1))
    expected = x.double() @ torch.from_numpy(q4_1_dequantize(ffn_blocks)).double().T
    assert ((torch.from_numpy(linear(x.numpy())).double() - expected).norm() / expected.norm()).item() < 1e-4


def test_native_kernels_are_the_default_where_they_build(monkeypatch):
    """Without `ENGINE_NATIVE_CPU` the best build for this CPU is chosen; "off" chooses PyTorch's kernel; "avx2"
    the AVX2 build, what an AVX2-only machine runs."""
    monkeypatch.delenv("ENGINE_NATIVE_CPU", raising=False)
    if native.choose_isa("on") is None:
        pytest.skip("this CPU lacks AVX2, FMA or F16C")
    assert native.choose_isa() == native.choose_isa("on")
    assert native.choose_isa("off") is None
    assert native.choose_isa("avx2") in ("avx2", "avx2-vnni")
    monkeypatch.setenv("ENGINE_NATIVE_CPU", "off")
    assert native.choose_isa() is None


def test_native_decode_step_matches_its_prefill(native_engine):
    """Tokens decoded one native step at a time get the argmax of the same sequence prefilled at once, and the best 16
    candidates' logits within 0.75 (the bar of the default fast path)."""
    model = native_engine.model
    ids = native_engine.tokenizer.encode("The quick brown fox jumps over the lazy dog, again and again.")
    cache = model.new_cache(2, 64)
    prefilled = torch.from_numpy(model.prefill(ids, cache, 0, all_logits=True)[3:])  # (T - 3, V)
    model.prefill(ids[:3], cache, 1)
    stepped = torch.from_numpy(np.stack([model.decode([ids[p]], cache, [1], [p])[0] for p in range(3, len(ids))]))
    assert torch.equal(stepped.argmax(-1), prefilled.argmax(-1))
    top = prefilled.topk(HEAD_REFINE_TOP, dim=-1).indices
    assert (stepped.gather(1, top) - prefilled.gather(1, top)).abs().max().item() <= 0.75


def test_native_decode_step_is_batch_invariant(native_engine):
    """Eleven sequences decoded in one native step (row chunks of 8, 2 and 1 in the kernels) get exactly the logits
    each gets alone."""
    model = native_engine.model
    ids = native_engine.tokenizer.encode("The quick brown fox jumps over the lazy dog, again and again and again.")
    count = 11

    def prefilled_cache():
        cache = model.new_cache(count, 64)
        for slot in range(count):
            model.prefill(ids[: 5 + slot], cache, slot)
        return cache

    together = model.decode(ids[5 : 5 + count], prefilled_cache(), range(count), range(5, 5 + count))
    cache = prefilled_cache()
    alone = np.concatenate([model.decode([ids[5 + s]], cache, [s], [5 + s]) for s in range(count)])
    assert np.array_equal(together, alone)


@pytest.mark.parametrize("wanted", ["on", "avx2"])
def test_native_steps_cut_by_rows_equal_steps_cut_by_outputs(var_dir, wanted):
    """On 2 threads a step of 8 rows or more is cut by rows (each thread runs every layer for its rows, with no wait
    between the matmuls): the logits and the KV cache are exactly those of the same steps cut by outputs, for 16
    decode rows and for prompts prefilled together whose rows an even cut would part (a prompt's rows stay on one
    thread, or its later rows would attend to keys not written yet)."""
    _native_or_skip(wanted)
    engine = Engine.load(max_batch=16, max_context=256, threads=2, native_cpu=wanted)
    model, lib = engine.model, engine.model.native
    assert lib.threads == 2
    ids = engine.tokenizer.encode("The quick brown fox jumps over the lazy dog, again and again, " * 3)
    # 33, then 42 rows: the even cuts (16, 21) fall inside a prompt, so the rows are cut where a prompt ends (20)
    prompts = [ids[:20], ids[:3], ids[:10], ids[:9]]

    def run(split: bool):
        lib.lib.nc_set_split_rows(lib.context, int(split))
        try:
            cache = model.new_cache(16, 64)
            first = model.prefill_many([prompts[0], prompts[1], prompts[2]], cache, [0, 1, 2], [0, 0, 0])
            more = model.prefill_many(prompts, cache, [3, 4, 5, 6], [0, 0, 0, 0])
            for slot in range(7, 16):
                model.prefill(ids[: 4 + slot], cache, slot)
            lengths = [20, 3, 10, 20, 3, 10, 9] + [4 + slot for slot in range(7, 16)]
            tokens = [ids[length] for length in lengths]
            decoded = model.decode(tokens, cache, range(16), lengths)
            return [first, more, decoded], [np.array(cache.layer(layer)[0]) for layer in (0, 29)]
        finally:
            lib.lib.nc_set_split_rows(lib.context, 1)

    (by_rows, cache_rows), (by_outputs, cache_outputs) = run(True), run(False)
    for a, b in zip(by_rows + cache_rows, by_outputs + cache_outputs, strict=True):
        assert np.array_equal(a, b)


QUESTIONS_16 = (
    "Hi!", "Name three colours.", "What is 2 + 2?", "Écris une phrase sur Paris.", "What is WAIC?",
    "Tell me a joke.", "What is the capital of Japan?", "Write a haiku about rain.", "Why is the sky blue?",
    "List two fruits.", "How many legs has a spider?", "Say hello in Spanish.", "What is a neural network?",
    "Who wrote Hamlet?", "Give me a synonym for happy.", "What day comes after Monday?",
)  # fmt: skip


def test_native_replies_do_not_depend_on_their_neighbours(native_engine):
    """A greedy reply decoded alone is the same reply decoded among 15 others (the scheduler's full batch), and the
    backend string names the kernels."""
    plans = [
        native_engine.render_chat([{"role": "user", "content": q}], max_new_tokens=12).token_ids for q in QUESTIONS_16
    ]
    params = SamplingParams(greedy=True, max_new_tokens=12)
    alone = [native_engine.generate(plan, params)[0] for plan in plans]
    native_engine.start()
    try:
        handles, texts = [], [[] for _ in plans]
        for index, plan in enumerate(plans):
            handles.append(native_engine.submit(plan, params, lambda event, i=index: texts[i].append(event.text)))
        finals = [handle.wait(timeout=300) for handle in handles]
    finally:
        native_engine.stop()
    assert ["".join(t) for t in texts] == alone
    assert finals[0].stats.backend.startswith("CPU · q4_1×q16 ")


@pytest.mark.parametrize("wanted", ["on", "avx2"])
def test_native_head_gives_every_logit_of_the_exact_head(gguf_path, wanted):
    """The native head over the Q8_0 embedding (its codes rearranged in place) gives every logit (not only the best
    candidates) within 1e-4 of the exact fp32 head, relative to the largest, for 1, 3 and 17 rows, without a second copy
    of the table."""
    lib = _native_or_skip(wanted)
    tensor = next(t for t in GGUFFile(gguf_path).tensors() if t.name == "token_embd.weight")
    codes, scales = q8_0_unpack(tensor)
    dense = torch.from_numpy(codes).double().unflatten(-1, (-1, 32)) * torch.from_numpy(scales).double()[..., None]
    dense = dense.flatten(-2)  # (V, dim)
    natural = codes.copy()
    positions = native.pack_q8_0(lib, codes)  # in place
    if positions is not None:
        assert np.array_equal(codes[:, positions], natural)
    head = native.NativeHead(lib, codes, scales)
    assert head.codes.ctypes.data == codes.ctypes.data
    for rows in (1, 3, 17):
        x = 3 * torch.randn(rows, codes.shape[1], generator=torch.Generator().manual_seed(rows))
        exact = x.double() @ dense.T  # (rows, V)
        got = torch.from_numpy(head(x.numpy())).double()
        assert (got - exact).abs().max().item() <= 1e-4 * exact.abs().max().item()
        assert torch.equal(got.argmax(-1), exact.argmax(-1))


def test_an_engine_on_the_native_path_never_imports_torch(native_engine, var_dir):
    """Loading the engine on the native path and serving a greedy and a sampled reply with every penalty and a bias
    leaves PyTorch unimported (about 250 MB of a worker's memory), in a fresh process."""
    script = (
        "import sys\n"
        "from demo_engine.engine import Engine, SamplingParams\n"
        "engine = Engine.load(max_batch=4, max_context=256, native_cpu='on')\n"
        "messages = [{'role': 'user', 'content': 'Hi!'}]\n"
        "engine.generate(messages, SamplingParams(greedy=True, max_new_tokens=4))\n"
        "engine.start()\n"
        "engine.generate(messages, SamplingParams(temperature=1.0, seed=1, repetition_penalty=1.2,\n"
        "    frequency_penalty=0.5, presence_penalty=0.5, logit_bias={5: 1.0}, max_new_tokens=4))\n"
        "engine.stop()\n"
        "print(engine.backend, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.split()[-1] == "False", done.stdout
