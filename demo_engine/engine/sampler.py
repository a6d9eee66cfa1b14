"""Choosing the next token from logits: penalties and a logit bias (only when asked for), then greedy / temperature /
top-k / top-p.

A chain of small functions in the spirit of vLLM's sampler. With the defaults nothing touches the logits, so greedy
(or temperature 0) is the argmax of the model's own logits. Penalties are opt-in and follow their sources:
`repetition_penalty` as transformers (prompt and reply), `frequency_penalty` and `presence_penalty` as OpenAI
defines them (tokens generated so far in this reply), `logit_bias` as OpenAI's (a number added to a token's logit
at every step, -100..100). The random draw is the caller's: each request
owns a seeded `torch.Generator`, so a request's sampled reply does not depend on what else is in the batch,
and the Triton and reference samplers (behind `kernels.dispatch.sample`) agree on the same draw.
Knows nothing about text or the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from kernels import dispatch

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


def apply_repetition_penalty(logits: torch.Tensor, seen: list[torch.Tensor | None], penalties: list[float]) -> None:
    """In place, as transformers does: a seen token's logit is divided by the penalty if positive, else multiplied.

    logits: (B, V) fp32; seen[i]: the token ids row i has seen (prompt and reply so far), None when not tracked.
    """
    for row, (ids, penalty) in enumerate(zip(seen, penalties, strict=True)):
        if penalty == 1.0 or ids is None or ids.numel() == 0:
            continue
        values = logits[row].gather(0, ids)  # (n,)
        values = torch.where(values > 0, values / penalty, values * penalty)
        logits[row].scatter_(0, ids, values)


def apply_frequency_presence_penalties(
    logits: torch.Tensor, counts: list[dict[int, int] | None], params: list[SamplingParams]
) -> None:
    """In place, as OpenAI defines them: logit[j] -= count[j] * frequency_penalty + (count[j] > 0) * presence_penalty,
    where count[j] is how often token j was generated so far in this reply (the prompt does not count).

    logits: (B, V) fp32; counts[i]: token id -> times generated, for row i (None or empty: nothing to do).
    """
    for row, (row_counts, p) in enumerate(zip(counts, params, strict=True)):
        if not row_counts or not p.penalises_repeats:
            continue
        ids = torch.tensor(list(row_counts.keys()), dtype=torch.int64, device=logits.device)  # (n,)
        times = torch.tensor(list(row_counts.values()), dtype=logits.dtype, device=logits.device)  # (n,)
        logits[row].index_add_(0, ids, -(times * p.frequency_penalty + p.presence_penalty))


def apply_logit_bias(logits: torch.Tensor, params: list[SamplingParams]) -> None:
    """In place, as OpenAI defines it: logit[j] += logit_bias[j] for every token j a row's params bias.

    logits: (B, V) fp32. Ids past the vocabulary are ignored (the engine's vocabulary may be smaller than a
    client thinks).
    """
    vocab = logits.shape[-1]
    for row, p in enumerate(params):
        if not p.logit_bias:
            continue
        pairs = [(token, bias) for token, bias in p.logit_bias.items() if token < vocab]
        if not pairs:
            continue
        ids = torch.tensor([token for token, _ in pairs], dtype=torch.int64, device=logits.device)  # (n,)
        biases = torch.tensor([bias for _, bias in pairs], dtype=logits.dtype, device=logits.device)  # (n,)
        logits[row].index_add_(0, ids, biases)


def draw_uniform(generators: list[torch.Generator | None]) -> torch.Tensor:
    """One uniform number in [0, 1) per row, from that row's generator: (B,) fp32."""
    return torch.tensor(
        [float(torch.rand((), generator=g)) if g is not None else 0.0 for g in generators], dtype=torch.float32
    )


def sample_next_tokens(
    logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]
) -> torch.Tensor:
    """Next token id per row: logits (B, V) fp32 (penalties already applied) -> (B,) int64 on the CPU.

    On CUDA the parameters go to the device without waiting for it (non-blocking copies); the one sync is reading
    the chosen ids back at the end.
    """
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
