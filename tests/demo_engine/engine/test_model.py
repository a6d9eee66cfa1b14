"""The Llama forward against `transformers` on the same GGUF: exact in fp32, argmax-faithful on the fast path."""

from __future__ import annotations

import pytest
import torch

from demo_engine.engine import SamplingParams
from demo_engine.engine.model import HEAD_REFINE_TOP

PROMPTS = [
    "What is the capital of France?",
    "Écris deux phrases sur le café et la mer.",
    "用中文介绍一下长城。",
    "Write a Python function that reverses a linked list.",
    "Tell me a joke about GPUs 🎉 and explain why it is funny.",
]
GREEDY_TOKENS = 64
# Prompts the fp32 tests above do not use: with the old default repetition penalty of 1.1, `--greedy` matched
# transformers' greedy reply on 1 of 5 such prompts.
UNSEEN_PROMPTS = [
    "Name three things to see at an AI conference.",
    "How do I boil an egg?",
    "Quelle est la capitale de l'Italie ?",
    "List the planets of the solar system.",
    "Why is the sky blue? Answer briefly.",
]
UNSEEN_TOKENS = 32


@pytest.fixture(scope="session")
def fp32_runs(fp32_engine, reference_model):
    """Per prompt: prompt ids, our fp32 greedy continuation, our decode-step logits, and the reference logits.

    The 5 prompts decode together as one batch (rows are independent), which keeps this under a minute.
    """
    model = fp32_engine.model
    eos = fp32_engine.tokenizer.eos_id
    prompts = [
        fp32_engine.render_chat([{"role": "user", "content": q}], max_new_tokens=GREEDY_TOKENS).token_ids
        for q in PROMPTS
    ]
    cache = model.new_cache(len(prompts), max(map(len, prompts)) + GREEDY_TOKENS + 1)
    generated: list[list[int]] = [[] for _ in prompts]
    step_logits: list[list[torch.Tensor]] = []
    with torch.inference_mode():
        for slot, prompt in enumerate(prompts):
            step_logits.append([model.prefill(torch.tensor(prompt), cache, slot)[0]])  # (V,)
        live = list(range(len(prompts)))
        while live:
            for row in list(live):
                token = int(step_logits[row][-1].argmax())
                if token == eos or len(generated[row]) == GREEDY_TOKENS:
                    live.remove(row)
                else:
                    generated[row].append(token)
            if not live:
                break
            logits = model.decode(
                torch.tensor([generated[r][-1] for r in live]),
                cache,
                torch.tensor(live),
                torch.tensor([len(prompts[r]) + len(generated[r]) - 1 for r in live]),
            )  # (B, V)
            for row, row_logits in zip(live, logits, strict=True):
                step_logits[row].append(row_logits)
        runs = []
        for slot, prompt in enumerate(prompts):
            full = torch.tensor(prompt + generated[slot])
            single = model.new_cache(1, len(full))
            runs.append(
                {
                    "prompt": prompt,
                    "generated": generated[slot],
                    "full": full,
                    "decode_logits": torch.stack(step_logits[slot][: len(generated[slot]) + 1]),  # (G + 1, V)
                    "prefill_logits": model.prefill(full, single, 0, all_logits=True),  # (T, V)
                    "reference": reference_model(full[None]).logits[0].float(),  # (T, V)
                }
            )
    return runs


@pytest.mark.slow
def test_fp32_logits_match_reference_at_every_position(fp32_runs):
    """On the fp32 path, prefill and decode logits are within 1e-3 of transformers' at every position of 5 prompts."""
    for run in fp32_runs:
        n_prompt = len(run["prompt"])
        assert (run["prefill_logits"] - run["reference"]).abs().max().item() <= 1e-3
        decode_reference = run["reference"][n_prompt - 1 :]  # positions that predicted each generated token
        assert (run["decode_logits"] - decode_reference).abs().max().item() <= 1e-3


@pytest.mark.slow
def test_fp32_greedy_tokens_identical_to_reference(fp32_runs, reference_model):
    """64 greedy tokens (or up to <|im_end|>) are exactly what transformers' greedy generate gives, for 5 prompts."""
    for run in fp32_runs[:1]:
        prompt = torch.tensor([run["prompt"]])
        with torch.inference_mode():
            output = reference_model.generate(
                prompt, max_new_tokens=GREEDY_TOKENS, do_sample=False, eos_token_id=2, pad_token_id=2
            )[0, prompt.shape[1] :].tolist()
        if output and output[-1] == 2:
            output = output[:-1]
        assert run["generated"] == output
    # For the rest, the reference's own argmax at every position (teacher forcing on our tokens) is the same
    # test without a second 64-step generate per prompt.
    for run in fp32_runs:
        n_prompt = len(run["prompt"])
        reference_next = run["reference"][n_prompt - 1 :].argmax(-1).tolist()
        assert reference_next[: len(run["generated"])] == run["generated"]
        if len(run["generated"]) < GREEDY_TOKENS:
            assert reference_next[len(run["generated"])] == 2  # both stop at <|im_end|>


@pytest.mark.slow
@pytest.mark.parametrize("engine_fixture", ["fast_engine", "torch_int4_engine"])
def test_fast_path_argmax_agrees_with_reference(engine_fixture, fp32_runs, request):
    """The default fast path (native kernels) and PyTorch's int4 path pick the reference's argmax at >= 99% of all
    teacher-forced positions of 5 prompts."""
    agree = total = 0
    model = request.getfixturevalue(engine_fixture).model
    for run in fp32_runs:
        cache = model.new_cache(1, len(run["full"]))
        with torch.inference_mode():
            # (T, V); numpy on the native path
            logits = torch.as_tensor(model.prefill(run["full"], cache, 0, all_logits=True))
        matches = logits.argmax(-1) == run["reference"].argmax(-1)
        agree += int(matches.sum())
        total += matches.numel()
    assert agree / total >= 0.99, f"argmax agreement {agree / total:.4f}"


def test_fast_path_decode_matches_its_prefill(fast_engine):
    """A token decoded step by step gets the same logits (to bf16 noise) as the same sequence prefilled at once."""
    model = fast_engine.model
    ids = fast_engine.tokenizer.encode("The quick brown fox jumps over the lazy dog.")
    cache = model.new_cache(2, 64)
    with torch.inference_mode():
        # numpy on the native path, tensors on PyTorch's
        prefilled = torch.as_tensor(model.prefill(torch.tensor(ids), cache, 0, all_logits=True))  # (T, V)
        model.prefill(torch.tensor(ids[:3]), cache, 1)
        stepped = [
            torch.as_tensor(model.decode(torch.tensor([ids[p]]), cache, torch.tensor([1]), torch.tensor([p]))[0])
            for p in range(3, len(ids))
        ]
    stepped = torch.stack(stepped)
    assert torch.equal(stepped.argmax(-1), prefilled[3:].argmax(-1))
    # The head recomputes each row's best 16 candidates exactly: there, bf16 rounding through 30 blocks (prefill
    # runs bf16 SDPA, decode fp32 attention) is the only difference, a few steps of 0.125 at logits near 16.
    top = prefilled[3:].topk(HEAD_REFINE_TOP, dim=-1).indices
    assert (stepped.gather(1, top) - prefilled[3:].gather(1, top)).abs().max().item() <= 0.75
    # The rest of the vocabulary comes from the int8 x int8 head, within about 1.3 of the exact head (mean 0.14):
    # a wrong cache position would differ by several units, and in its argmax.
    assert (stepped - prefilled[3:]).abs().max().item() <= 2.0


def test_prefill_after_a_cached_prefix_equals_prefill_whole(fp32_engine):
    """Prefilling a prompt's rest at an offset, over a prefix already in the slot, gives the logits of prefilling
    the whole prompt (fp32, so to float rounding)."""
    model = fp32_engine.model
    ids = torch.tensor(fp32_engine.render_chat([{"role": "user", "content": "Bonjour !"}], max_new_tokens=8).token_ids)
    split = int((ids == fp32_engine.tokenizer.eos_id).nonzero()[0]) + 2
    cache = model.new_cache(2, len(ids))
    with torch.inference_mode():
        whole = model.prefill(ids, cache, 0, all_logits=True)[split:]  # (T - split, V)
        model.prefill(ids[:split], cache, 1)
        rest = model.prefill(ids[split:], cache, 1, start=split, all_logits=True)
    assert (rest - whole).abs().max().item() <= 1e-4
    assert torch.equal(rest.argmax(-1), whole.argmax(-1))


def test_backend_label_names_dtype_and_device(fast_engine, fp32_engine):
    """Per-request figures say which kernels ran: the CPU fast path and the fp32 reference path are told apart."""
    _, fast_stats = fast_engine.generate([5, 6, 7], SamplingParams(greedy=True, max_new_tokens=2))
    _, exact_stats = fp32_engine.generate([5, 6, 7], SamplingParams(greedy=True, max_new_tokens=2))
    assert fast_stats.backend.startswith(("CPU · q4_1×q16 ", "CPU · int4 bf16"))
    assert exact_stats.backend == "CPU · fp32"


@pytest.fixture(scope="module")
def transformers_greedy(fp32_engine, reference_model):
    """Per unseen prompt: its chat-template ids and transformers' greedy continuation (without the final <|im_end|>)."""
    runs = []
    for question in UNSEEN_PROMPTS:
        ids = fp32_engine.render_chat([{"role": "user", "content": question}], max_new_tokens=UNSEEN_TOKENS).token_ids
        with torch.inference_mode():
            output = reference_model.generate(
                torch.tensor([ids]), max_new_tokens=UNSEEN_TOKENS, do_sample=False, eos_token_id=2, pad_token_id=2
            )[0, len(ids) :].tolist()
        runs.append((question, ids, output[:-1] if output and output[-1] == 2 else output))
    return runs


@pytest.mark.slow
def test_greedy_reply_is_transformers_greedy_reply(fp32_engine, transformers_greedy):
    """`SamplingParams(greedy=True)` with its defaults gives exactly transformers' greedy tokens on 5 unseen prompts."""
    for _question, ids, expected in transformers_greedy:
        text, _stats = fp32_engine.generate(ids, SamplingParams(greedy=True, max_new_tokens=UNSEEN_TOKENS))
        assert text == fp32_engine.tokenizer.decode(expected)


@pytest.mark.slow
def test_generate_cli_greedy_prints_transformers_greedy_reply(fp32_engine, transformers_greedy, monkeypatch, capsys):
    """`python -m demo_engine.generate "…" --greedy --fp32` prints transformers' greedy reply, word for word, for each
    of 5 unseen prompts."""
    from demo_engine import generate

    monkeypatch.setattr(generate.Engine, "load", classmethod(lambda cls, **options: fp32_engine))
    for question, _ids, expected in transformers_greedy:
        assert generate.main([question, "--greedy", "--fp32", "--max-new-tokens", str(UNSEEN_TOKENS)]) == 0
        assert capsys.readouterr().out == fp32_engine.tokenizer.decode(expected) + "\n"
