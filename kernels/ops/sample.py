"""Batched sampling in Triton: temperature, top-k, top-p and greedy, one program per row, no sort.

The reference (`kernels.reference.sample`) sorts the vocabulary (49,152 entries for the model) and takes cumulative
sums. Here every cut is a threshold on the unnormalised probability e = exp(logit / T - max) instead, found by
searching its float bit pattern (non-negative floats order like their int32 bits):

- top-k: the k-th largest e is the largest bit pattern b with #{e >= b} >= k;
- top-p: the smallest kept e is the largest b with sum{e >= b} >= top_p * (mass of the top-k);
- the sample: the largest b with sum{e >= b, kept} > uniform * (kept mass), i.e. the first token in descending order
  whose cumulative mass exceeds the draw, which is the reference's inverse CDF;
- then, among the tokens whose e has that bit pattern, the one the draw points at, in id order.

Each search narrows [lo, hi) by 16 probes a pass over the row (`_search`): 8 passes for 30 bits, so a row is read
about 28 times; at 49,152 fp32 logits that is 5.5 MB per row, from L2 on a GPU. A draw that lands on tokens of equal
probability takes them in id order, as the reference's stable sort does; but a top-k or top-p cut through such a tie
keeps every tied token where the reference keeps the lower ids only. On untied data the two agree.
Knows nothing about the model.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_ONE_BITS = 0x3F800000  # float 1.0: e = exp(s - max) is at most 1
_PROBES = 16
_PASSES = 8  # 16 ** 8 = 2 ** 32 > the 2 ** 30 patterns in [0, 1.0]


@triton.jit
def _weights(logits_ptr, cols, mask, temperature, row_max):
    s = tl.load(logits_ptr + cols, mask=mask, other=float("-inf")).to(tl.float32) / temperature
    return tl.where(mask, tl.exp(s - row_max), 0.0)


@triton.jit
def _search(
    logits_ptr,
    n_cols,
    temperature,
    row_max,
    floor_bits,
    threshold,
    COUNT: tl.constexpr,
    STRICT: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    PROBES: tl.constexpr,
    PASSES: tl.constexpr,
    ONE_BITS: tl.constexpr,
):
    """Largest bit pattern b in [0, ONE_BITS] with F(b) >= threshold (> if STRICT), where F(b) sums 1 (COUNT) or e
    over the entries with bits(e) >= max(b, floor_bits). F falls as b grows, and F(0) passes by construction."""
    lo = tl.zeros((), tl.int32)  # F(lo) passes
    hi = tl.full((), ONE_BITS + 1, tl.int32)  # F(hi) fails: nothing is above 1.0
    j = tl.arange(0, PROBES)
    for _ in range(PASSES):
        step = (hi - lo + PROBES - 1) // PROBES
        probes = lo + (j + 1) * step  # (PROBES,); those >= hi are ignored
        total = tl.zeros((PROBES,), tl.float32)
        for start in range(0, n_cols, BLOCK_SIZE):
            cols = start + tl.arange(0, BLOCK_SIZE)
            mask = cols < n_cols
            e = _weights(logits_ptr, cols, mask, temperature, row_max)
            bits = e.to(tl.int32, bitcast=True)
            counted = mask & (bits >= floor_bits)
            if COUNT:  # noqa: SIM108 (Triton resolves a constexpr `if` at compile time)
                value = counted.to(tl.float32)
            else:
                value = tl.where(counted, e, 0.0)
            hit = bits[None, :] >= probes[:, None]  # (PROBES, BLOCK_SIZE)
            total += tl.sum(tl.where(hit, value[None, :], 0.0), axis=1)
        if STRICT:  # noqa: SIM108
            passes = total > threshold
        else:
            passes = total >= threshold
        passes = passes & (probes < hi)
        new_lo = tl.maximum(lo, tl.max(tl.where(passes, probes, lo), axis=0))
        hi = tl.minimum(hi, tl.min(tl.where(passes | (probes >= hi), hi, probes), axis=0))
        lo = new_lo
    return lo


@triton.jit
def _mass(logits_ptr, n_cols, temperature, row_max, floor_bits, BLOCK_SIZE: tl.constexpr):
    """sum of e over the entries with bits(e) >= floor_bits."""
    total = tl.zeros((BLOCK_SIZE,), tl.float32)
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        mask = cols < n_cols
        e = _weights(logits_ptr, cols, mask, temperature, row_max)
        total += tl.where(e.to(tl.int32, bitcast=True) >= floor_bits, e, 0.0)
    return tl.sum(total, axis=0)


@triton.jit
def _sample_kernel(
    logits_ptr,
    temperature_ptr,
    top_k_ptr,
    top_p_ptr,
    uniform_ptr,
    out_ptr,
    logits_stride,
    n_cols,
    BLOCK_SIZE: tl.constexpr,
    PROBES: tl.constexpr,
    PASSES: tl.constexpr,
    ONE_BITS: tl.constexpr,
):
    row = tl.program_id(0)
    logits_ptr += row.to(tl.int64) * logits_stride
    temperature = tl.load(temperature_ptr + row).to(tl.float32)
    top_k = tl.load(top_k_ptr + row).to(tl.int32)
    top_p = tl.load(top_p_ptr + row).to(tl.float32)
    uniform = tl.load(uniform_ptr + row).to(tl.float32)

    # pass 1: the row maximum of the raw logits and its first index (the greedy answer)
    best = tl.full((BLOCK_SIZE,), float("-inf"), tl.float32)
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        best = tl.maximum(best, tl.load(logits_ptr + cols, mask=cols < n_cols, other=float("-inf")).to(tl.float32))
    raw_max = tl.max(best, axis=0)

    if temperature > 0:
        # dividing by T > 0 keeps the order (rounding included), so the max of logits / T is raw_max / T
        row_max = raw_max / temperature
        floor_bits = tl.zeros((), tl.int32)
        if (top_k > 0) & (top_k < n_cols):
            floor_bits = _search(
                logits_ptr, n_cols, temperature, row_max, floor_bits, top_k.to(tl.float32),
                True, False, BLOCK_SIZE, PROBES, PASSES, ONE_BITS,
            )  # fmt: skip
        if top_p < 1.0:
            top_k_mass = _mass(logits_ptr, n_cols, temperature, row_max, floor_bits, BLOCK_SIZE)
            floor_bits = _search(
                logits_ptr, n_cols, temperature, row_max, floor_bits, top_p * top_k_mass,
                False, False, BLOCK_SIZE, PROBES, PASSES, ONE_BITS,
            )  # fmt: skip
        kept_mass = _mass(logits_ptr, n_cols, temperature, row_max, floor_bits, BLOCK_SIZE)
        target_bits = _search(
            logits_ptr, n_cols, temperature, row_max, floor_bits, uniform * kept_mass,
            False, True, BLOCK_SIZE, PROBES, PASSES, ONE_BITS,
        )  # fmt: skip
        # the token is the smallest e at or above the found pattern; exact sums make that the pattern itself, and a
        # draw that rounding pushed past the kept mass lands on the least likely kept token, as in the reference.
        # Pattern 1 is the smallest positive float: a token of probability 0 is never drawn.
        target_bits = tl.maximum(tl.maximum(target_bits, floor_bits), 1)
        least = tl.full((BLOCK_SIZE,), ONE_BITS + 1, tl.int32)
        for start in range(0, n_cols, BLOCK_SIZE):
            cols = start + tl.arange(0, BLOCK_SIZE)
            bits = _weights(logits_ptr, cols, cols < n_cols, temperature, row_max).to(tl.int32, bitcast=True)
            least = tl.minimum(least, tl.where(bits >= target_bits, bits, ONE_BITS + 1))
        target_bits = tl.min(least, axis=0)
        # tokens tied at that probability: the reference's stable sort lists them by id, and its inverse CDF takes
        # the j-th, j = (draw - mass above them) // their probability
        above = _mass(logits_ptr, n_cols, temperature, row_max, target_bits + 1, BLOCK_SIZE)
        tied_e = target_bits.to(tl.float32, bitcast=True)
        nth = tl.maximum(tl.floor((uniform * kept_mass - above) / tied_e), 0.0).to(tl.int32)
        seen = tl.zeros((), tl.int32)
        token = tl.full((), n_cols, tl.int32)
        last = tl.full((), -1, tl.int32)
        for start in range(0, n_cols, BLOCK_SIZE):
            cols = start + tl.arange(0, BLOCK_SIZE)
            mask = cols < n_cols
            bits = _weights(logits_ptr, cols, mask, temperature, row_max).to(tl.int32, bitcast=True)
            tied = mask & (bits == target_bits)
            order = seen + tl.cumsum(tied.to(tl.int32), axis=0) - 1  # rank among the tied tokens, by id
            token = tl.minimum(token, tl.min(tl.where(tied & (order == nth), cols, n_cols), axis=0))
            last = tl.maximum(last, tl.max(tl.where(tied, cols, -1), axis=0))
            seen += tl.sum(tied.to(tl.int32), axis=0)
        token = tl.where(token == n_cols, last, token)  # a draw rounded past the last tied token takes the last
    else:
        first = tl.full((BLOCK_SIZE,), n_cols, tl.int32)
        for start in range(0, n_cols, BLOCK_SIZE):
            cols = start + tl.arange(0, BLOCK_SIZE)
            mask = cols < n_cols
            x = tl.load(logits_ptr + cols, mask=mask, other=float("-inf")).to(tl.float32)
            first = tl.minimum(first, tl.where(mask & (x == raw_max), cols, n_cols))
        token = tl.min(first, axis=0)
    tl.store(out_ptr + row, token.to(tl.int64))


def sample(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    uniform: torch.Tensor,
) -> torch.Tensor:
    """(B,) int64 token ids; see `kernels.reference.sample` for the exact rule."""
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    n_rows, n_cols = logits.shape
    out = torch.empty(n_rows, dtype=torch.int64, device=logits.device)
    # 2048 columns a step: the model's 49,152-entry vocabulary is 24 steps; the (16, 2048) probe tile is 128 KiB fp32
    block = min(triton.next_power_of_2(n_cols), 2048)
    _sample_kernel[(n_rows,)](
        logits, temperature.contiguous(), top_k.contiguous(), top_p.contiguous(), uniform.contiguous(), out,
        logits.stride(0), n_cols,
        BLOCK_SIZE=block, PROBES=_PROBES, PASSES=_PASSES, ONE_BITS=_ONE_BITS, num_warps=8,
    )  # fmt: skip
    return out
