"""Choosing the next token from logits: penalties and a logit bias (only when asked for), then greedy / temperature /
top-k / top-p.

A chain of small functions in the spirit of vLLM's sampler. With the defaults nothing touches the logits, so greedy
(or temperature 0) is the argmax of the model's own logits. Penalties are opt-in and follow their sources:
`repetition_penalty` as transformers (prompt and reply), `frequency_penalty` and `presence_penalty` as OpenAI
defines them (tokens generated so far in this reply), `logit_bias` as OpenAI's (a number added to a token's logit
at every step, -100..100). The random draw is the caller's: each request
owns a seeded generator (`new_generator`), so a request's sampled reply does not depend on what else is in the batch,
and the Triton and reference samplers (behind `kernels.dispatch.sample`) agree on the same draw.

Logits come as torch tensors (the PyTorch model's paths) or as numpy arrays (the native CPU path, which runs without
PyTorch): the penalties are the same code for both; numpy logits are drawn from by `_sample_numpy`, the reference's
inverse-CDF draw over the same candidates, with a numpy `Generator`. A seed reproduces a reply on the same backend
(the native path's draws are not the torch paths' draws). Knows nothing about text or the model.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CPU_TOP_K_PREFILTER = 1024  # largest top_k for which the CPU path samples among the top-k candidates only


@dataclass
class SamplingParams:
    """How one reply is sampled. `temperature` 0 or `greedy` True means argmax (of the logits after any penalty
    asked for; with the defaults, of the model's logits)."""

    temperature: float = 0.7
    top_k: int = 50  # 0 = off
    top_p: float = 0.95  # 1.0 = off
    repetition_penalty: float = 1.0  # 1.0 = off; >1 discourages tokens already in the prompt or reply
    frequency_penalty: float = 0.0  # OpenAI's: minus this times how often a token was generated so far (-2..2)
    presence_penalty: float = 0.0  # OpenAI's: minus this once a token was generated at all (-2..2)
    seed: int | None = None  # None: a fresh random seed per request
    max_new_tokens: int = 256
    greedy: bool = False
    ignore_eos: bool = False  # benchmarks: run to max_new_tokens even past <|im_end|>
    logit_bias: dict[int, float] = field(default_factory=dict)  # OpenAI's: token id -> added to its logit (-100..100)

    @property
    def is_greedy(self) -> bool:
        """True when the reply is the argmax at every step."""
        return self.greedy or self.temperature <= 0

    def validate(self) -> None:
        """Raise ValueError on values the sampler cannot honour."""
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise ValueError(f"invalid sampling parameters: {self}")
        if not (-2 <= self.frequency_penalty <= 2 and -2 <= self.presence_penalty <= 2):
            raise ValueError("frequency_penalty and presence_penalty must be from -2 to 2")
        for token, bias in self.logit_bias.items():
            if not isinstance(token, int) or token < 0:
                raise ValueError(f"logit_bias: {token!r} is not a token id")
            if not -100 <= bias <= 100:
                raise ValueError("logit_bias values must be from -100 to 100")

    @property
    def penalises_repeats(self) -> bool:
        """True when the reply's own tokens change the logits (a penalty other than the neutral one)."""
        return self.frequency_penalty != 0.0 or self.presence_penalty != 0.0


def new_generator(seed: int | None, array_library: str) -> Any:
    """A request's own random generator (seeded, else freshly seeded): a `numpy.random.Generator` for numpy logits,
    a `torch.Generator` for torch ones (`array_library`: "numpy" or "torch", the model's)."""
    if array_library == "numpy":
        return np.random.default_rng(seed)
    import torch

    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def _like(logits: Any, values: list[float]) -> Any:
    """`values` as an array of the logits' kind, dtype (and device)."""
    return np.asarray(values, dtype=logits.dtype) if isinstance(logits, np.ndarray) else logits.new_tensor(values)


def apply_repetition_penalty(logits: Any, seen: list[Collection[int] | None], penalties: list[float]) -> None:
    """In place, as transformers does: a seen token's logit is divided by the penalty if positive, else multiplied.

    logits: (B, V) fp32 (torch or numpy); seen[i]: the token ids row i has seen (prompt and reply so far), None when
    not tracked.
    """
    for row, (ids, penalty) in enumerate(zip(seen, penalties, strict=True)):
        if penalty == 1.0 or not ids:
            continue
        ids = sorted(ids)
        values = logits[row, ids]  # (n,), a copy
        positive = values > 0
        values[positive] /= penalty
        values[~positive] *= penalty
        logits[row, ids] = values


def apply_frequency_presence_penalties(
    logits: Any, counts: list[dict[int, int] | None], params: list[SamplingParams]
) -> None:
    """In place, as OpenAI defines them: logit[j] -= count[j] * frequency_penalty + (count[j] > 0) * presence_penalty,
    where count[j] is how often token j was generated so far in this reply (the prompt does not count).

    logits: (B, V) fp32 (torch or numpy); counts[i]: token id -> times generated, for row i (None or empty: nothing
    to do).
    """
    for row, (row_counts, p) in enumerate(zip(counts, params, strict=True)):
        if not row_counts or not p.penalises_repeats:
            continue
        ids = list(row_counts.keys())  # distinct
        times = _like(logits, list(row_counts.values()))  # (n,)
        logits[row, ids] -= times * p.frequency_penalty + p.presence_penalty


def apply_logit_bias(logits: Any, params: list[SamplingParams]) -> None:
    """In place, as OpenAI defines it: logit[j] += logit_bias[j] for every token j a row's params bias.

    logits: (B, V) fp32 (torch or numpy). Ids past the vocabulary are ignored (the engine's vocabulary may be smaller
    than a client thinks).
    """
    vocab = logits.shape[-1]
    for row, p in enumerate(params):
        pairs = [(token, bias) for token, bias in p.logit_bias.items() if token < vocab]
        if not pairs:
            continue
        ids = [token for token, _ in pairs]  # distinct (dictionary keys)
        logits[row, ids] += _like(logits, [bias for _, bias in pairs])


def draw_uniform(generators: list) -> Any:
    """One uniform number in [0, 1) per row, from that row's torch generator: (B,) fp32."""
    import torch

    return torch.tensor(
        [float(torch.rand((), generator=g)) if g is not None else 0.0 for g in generators], dtype=torch.float32
    )


def _draw_numpy(row: np.ndarray, p: SamplingParams, uniform: float) -> int:
    """One token from one row of numpy logits (V,) by `kernels.reference.sample`'s inverse-CDF rule: softmax(logits /
    temperature) sorted by descending probability (ties: lower id first), the top-k kept, then each token whose
    preceding mass is below top_p of theirs (the first always), renormalised; the first token whose cumulative
    probability exceeds `uniform`. With top-k (up to CPU_TOP_K_PREFILTER) only the k best are candidates: the
    renormalised distribution over them is the same."""
    vocab = row.shape[0]
    if 0 < p.top_k < min(vocab, CPU_TOP_K_PREFILTER + 1):
        ids = np.sort(np.argpartition(row, vocab - p.top_k)[vocab - p.top_k :])  # the k best, in id order
    else:
        ids = np.arange(vocab)
    scaled = row[ids].astype(np.float32) / np.float32(p.temperature)
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    sorted_p = probs[order]
    if p.top_k > 0:
        sorted_p[p.top_k :] = 0.0
    mass_before = np.cumsum(sorted_p) - sorted_p
    keep = mass_before < np.float32(p.top_p) * sorted_p.sum()
    keep[0] = True
    sorted_p = np.where(keep, sorted_p, np.float32(0.0))
    cdf = np.cumsum(sorted_p)
    pick = int(np.count_nonzero(cdf <= np.float32(uniform) * cdf[-1]))
    # a rounding-short cdf could point past the kept tokens; step back to the last kept one
    pick = min(pick, max(int(np.count_nonzero(sorted_p)), 1) - 1)
    return int(ids[order[pick]])


def _sample_numpy(logits: np.ndarray, params: list[SamplingParams], generators: list) -> np.ndarray:
    """`sample_next_tokens` for numpy logits: (B, V) -> (B,) int64."""
    if all(p.is_greedy for p in params):
        return logits.argmax(axis=-1)
    return np.array(
        [
            int(row.argmax()) if p.is_greedy else _draw_numpy(row, p, float(g.random(dtype=np.float32)))
            for row, p, g in zip(logits, params, generators, strict=True)
        ],
        dtype=np.int64,
    )


def sample_next_tokens(logits: Any, params: list[SamplingParams], generators: list) -> Any:
    """Next token id per row: logits (B, V) fp32 (penalties already applied) -> (B,) int64 on the CPU (a numpy array
    for numpy logits, whose generators are numpy's; else a tensor).

    On CUDA the parameters go to the device without waiting for it (non-blocking copies); the one sync is reading
    the chosen ids back at the end.
    """
    if isinstance(logits, np.ndarray):
        return _sample_numpy(logits, params, generators)
    import torch

    from kernels import dispatch

    batch = logits.shape[0]
    if all(p.is_greedy for p in params):
        return logits.argmax(dim=-1).cpu()  # the common demo case: skip the sort over 49,152 entries
    device = logits.device
    temperature = torch.tensor([0.0 if p.is_greedy else p.temperature for p in params]).to(device, non_blocking=True)
    top_k = torch.tensor([p.top_k for p in params], dtype=torch.int64).to(device, non_blocking=True)
    top_p = torch.tensor([p.top_p for p in params], dtype=torch.float32).to(device, non_blocking=True)
    uniform = draw_uniform(generators).to(device, non_blocking=True)  # (B,)
    assert uniform.shape[0] == batch
    if dispatch.backend_for(logits) == "torch" and all(0 < p.top_k <= CPU_TOP_K_PREFILTER for p in params):
        # The reference sorts all 49,152 logits of every row (240 ms for 16 rows on this CPU). With top-k set, only
        # the k best can be drawn and the renormalised top-k (and top-p within it) distribution is the same when
        # computed over those k alone, so the sort runs over the candidates only.
        width = max(p.top_k for p in params)
        candidates = logits.topk(width, dim=-1)  # values, indices: (B, width), best first
        picked = dispatch.sample(candidates.values, temperature, top_k, top_p, uniform)  # (B,) ranks
        return candidates.indices.gather(1, picked[:, None]).squeeze(1).cpu()
    return dispatch.sample(logits, temperature, top_k, top_p, uniform).cpu()
