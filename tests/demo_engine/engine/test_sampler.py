"""Sampler pieces: greedy, top-k, top-p, temperature, the penalties and seeded reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from demo_engine.engine import SamplingParams
from demo_engine.engine.sampler import (
    apply_frequency_presence_penalties,
    apply_logit_bias,
    apply_repetition_penalty,
    new_generator,
    sample_next_tokens,
)


def _generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_greedy_and_top_k_one_pick_the_argmax():
    """Greedy, temperature 0 and top-k 1 all return the highest logit."""
    logits = torch.randn(3, 100, generator=torch.Generator().manual_seed(0))
    expected = logits.argmax(-1)
    assert torch.equal(sample_next_tokens(logits, [SamplingParams(greedy=True)] * 3, [None] * 3), expected)
    params = [SamplingParams(temperature=1.5, top_k=1, top_p=1.0)] * 3
    assert torch.equal(sample_next_tokens(logits, params, _generators([1, 2, 3])), expected)


def test_same_seed_same_tokens_whatever_the_neighbours():
    """A seeded request draws the same tokens whether it is sampled alone or next to others."""
    logits = torch.randn(4, 500, generator=torch.Generator().manual_seed(1))
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, seed=42)
    alone = [int(sample_next_tokens(logits[:1], [params], _generators([42]))[0]) for _ in range(1)]
    together = sample_next_tokens(logits, [params] * 4, _generators([42, 7, 8, 9]))
    assert int(together[0]) == alone[0]
    draws_a = [int(sample_next_tokens(logits[:1], [params], [g])[0]) for g in [torch.Generator().manual_seed(5)] * 20]
    draws_b = [int(sample_next_tokens(logits[:1], [params], [g])[0]) for g in [torch.Generator().manual_seed(5)] * 20]
    assert draws_a == draws_b
    assert len(set(draws_a)) > 1  # it is actually sampling


def test_top_k_and_top_p_restrict_the_candidates():
    """Samples only ever come from the top-k tokens, and top-p keeps the smallest set reaching the mass."""
    logits = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    generator = torch.Generator().manual_seed(0)
    top_k = {
        int(sample_next_tokens(logits, [SamplingParams(temperature=2.0, top_k=2, top_p=1.0)], [generator])[0])
        for _ in range(200)
    }
    assert top_k == {0, 1}
    probs = torch.softmax(logits[0], -1)  # 0.64, 0.23, ...: top-p 0.8 needs the first two
    assert probs[0] < 0.8 < probs[:2].sum()
    top_p = {
        int(sample_next_tokens(logits, [SamplingParams(temperature=1.0, top_k=0, top_p=0.8)], [generator])[0])
        for _ in range(200)
    }
    assert top_p == {0, 1}


def test_repetition_penalty_follows_transformers():
    """Seen tokens are penalised as transformers does: positive logits divided, negative ones multiplied."""
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    apply_repetition_penalty(logits, [{0, 1}], [2.0])
    assert torch.equal(logits, torch.tensor([[1.0, -4.0, 1.0, 0.5]]))


def test_frequency_and_presence_penalties_follow_openai():
    """logit -= count * frequency_penalty + (count > 0) * presence_penalty, per row, from that row's own counts."""
    logits = torch.ones(2, 4)
    params = [SamplingParams(frequency_penalty=0.5, presence_penalty=0.25), SamplingParams(presence_penalty=-1.0)]
    apply_frequency_presence_penalties(logits, [{0: 2, 1: 1}, {3: 5}], params)
    assert torch.equal(logits, torch.tensor([[-0.25, 0.25, 1.0, 1.0], [1.0, 1.0, 1.0, 2.0]]))


def test_default_sampling_applies_no_penalty():
    """Out of the box nothing changes the logits: no repetition, frequency or presence penalty."""
    params = SamplingParams()
    assert (params.repetition_penalty, params.frequency_penalty, params.presence_penalty) == (1.0, 0.0, 0.0)
    assert not params.penalises_repeats


def test_penalties_outside_openais_range_are_refused():
    """A frequency or presence penalty outside -2..2 is refused before it reaches the scheduler."""
    for params in (SamplingParams(frequency_penalty=2.5), SamplingParams(presence_penalty=-2.01)):
        with pytest.raises(ValueError):
            params.validate()


def test_logit_bias_adds_to_each_rows_own_tokens():
    """logit += bias for the tokens a row biases, as OpenAI defines logit_bias; other rows and tokens are untouched,
    and an id past the vocabulary is ignored."""
    logits = torch.zeros(2, 4)
    apply_logit_bias(logits, [SamplingParams(logit_bias={1: 2.5, 3: -100.0, 99: 5.0}), SamplingParams()])
    assert torch.equal(logits, torch.tensor([[0.0, 2.5, 0.0, -100.0], [0.0, 0.0, 0.0, 0.0]]))


def test_logit_bias_outside_openais_range_is_refused():
    """A bias outside -100..100, or a key that is not a token id, is refused before it reaches the scheduler."""
    SamplingParams(logit_bias={5: 100.0, 6: -100.0}).validate()
    for bias in ({5: 100.5}, {5: -101.0}, {-1: 1.0}, {"5": 1.0}):
        with pytest.raises(ValueError):
            SamplingParams(logit_bias=bias).validate()


def test_logit_bias_steers_a_greedy_reply(fast_engine):
    """A greedy reply with +100 on one token says that token; -100 on the plain reply's first token avoids it."""
    plan = fast_engine.render_chat([{"role": "user", "content": "What is the capital of France?"}], max_new_tokens=8)
    plain, _ = fast_engine.generate(plan.token_ids, SamplingParams(greedy=True, max_new_tokens=8))
    first = fast_engine.tokenizer.encode(plain)[0]
    avoided, _ = fast_engine.generate(
        plan.token_ids, SamplingParams(greedy=True, max_new_tokens=8, logit_bias={first: -100.0})
    )
    assert not avoided.startswith(fast_engine.tokenizer.decode([first]))
    forced_id = fast_engine.tokenizer.encode(" Shanghai")[0]
    forced, _ = fast_engine.generate(
        plan.token_ids, SamplingParams(greedy=True, max_new_tokens=3, logit_bias={forced_id: 100.0})
    )
    assert forced.startswith(fast_engine.tokenizer.decode([forced_id]) * 2)


def test_frequency_penalty_changes_a_greedy_reply(fast_engine):
    """A greedy reply with a strong frequency penalty differs from the plain one: the scheduler applies it."""
    plan = fast_engine.render_chat([{"role": "user", "content": "Say 'yes' twenty times."}], max_new_tokens=24)
    plain, _ = fast_engine.generate(plan.token_ids, SamplingParams(greedy=True, max_new_tokens=24))
    penalised, _ = fast_engine.generate(
        plan.token_ids, SamplingParams(greedy=True, frequency_penalty=2.0, max_new_tokens=24)
    )
    assert plain != penalised


def test_seeded_reply_is_reproducible(fast_engine):
    """The same seed gives the same sampled reply; another seed (almost surely) a different one."""
    plan = fast_engine.render_chat([{"role": "user", "content": "Tell me a short story."}], max_new_tokens=24)
    params = SamplingParams(temperature=1.0, top_k=50, top_p=0.95, seed=1234, max_new_tokens=24)
    first, _ = fast_engine.generate(plan.token_ids, params)
    second, _ = fast_engine.generate(plan.token_ids, params)
    other, _ = fast_engine.generate(plan.token_ids, SamplingParams(temperature=1.0, seed=99, max_new_tokens=24))
    assert first == second
    assert first != other


def test_penalties_and_bias_are_the_same_on_numpy_logits():
    """The native path's numpy logits get exactly the torch logits' penalties and bias (one code for both)."""
    torch_logits = torch.randn(2, 64, generator=torch.Generator().manual_seed(3))
    numpy_logits = torch_logits.numpy().copy()
    params = [SamplingParams(frequency_penalty=0.7, presence_penalty=-0.3, logit_bias={3: 2.5, 9: -100.0, 99: 1.0}),
              SamplingParams(presence_penalty=1.1)]  # fmt: skip
    for logits in (torch_logits, numpy_logits):
        apply_repetition_penalty(logits, [{0, 5, 7, 60}, None], [1.3, 1.0])
        apply_frequency_presence_penalties(logits, [{5: 3, 11: 1}, {2: 2}], params)
        apply_logit_bias(logits, params)
    assert np.array_equal(torch_logits.numpy(), numpy_logits)


def test_numpy_sampling_follows_the_same_rules():
    """On numpy logits: greedy is the argmax; top-k and top-p restrict the candidates as on torch's; a seed reproduces
    the draws, whatever the neighbours."""
    logits = np.random.default_rng(0).standard_normal((3, 100), dtype=np.float32)
    greedy = sample_next_tokens(logits, [SamplingParams(greedy=True)] * 3, [None] * 3)
    assert np.array_equal(greedy, logits.argmax(-1))
    params = [SamplingParams(temperature=1.5, top_k=1, top_p=1.0)] * 3
    assert np.array_equal(sample_next_tokens(logits, params, [new_generator(s, "numpy") for s in (1, 2, 3)]), greedy)
    small = np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]], dtype=np.float32)
    generator = new_generator(0, "numpy")
    top_k = {int(sample_next_tokens(small, [SamplingParams(temperature=2.0, top_k=2, top_p=1.0)], [generator])[0])
             for _ in range(200)}  # fmt: skip
    assert top_k == {0, 1}
    top_p = {int(sample_next_tokens(small, [SamplingParams(temperature=1.0, top_k=0, top_p=0.8)], [generator])[0])
             for _ in range(200)}  # fmt: skip
    assert top_p == {0, 1}
    sampled = SamplingParams(temperature=1.0, top_k=50, top_p=0.95, seed=42)
    alone = [int(sample_next_tokens(logits[:1], [sampled], [g])[0]) for g in [new_generator(5, "numpy")] * 20]
    again = [int(sample_next_tokens(logits, [sampled] * 3, [g, None, None][:1] + [new_generator(7, "numpy")] * 2)[0])
             for g in [new_generator(5, "numpy")] * 20]  # fmt: skip
    assert alone == again
    assert len(set(alone)) > 1  # it is actually sampling
