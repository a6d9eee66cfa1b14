"""Decode attention in Triton: one new query token per sequence against its KV cache, split along the sequence
(split-K, "flash-decoding"), grouped-query, sequences of different lengths in one batch.

Stage 1 (`_decode_attention_kernel`): a program per (sequence, KV head, split) streams its share of the cached
positions once, for all the query heads that share the KV head (3 per KV head in the model: 9 query heads, 3 KV
heads), and keeps an online softmax in fp32; it writes the split's normalised output and log-sum-exp.
Stage 2 (`_merge_splits_kernel`): a program per (sequence, query head) merges the splits.

The naive torch version (`kernels.reference.decode_attention`) gathers each sequence's whole cache slot (max_len
positions, valid or not), repeats K and V per query head and materialises the scores: the cache is read about 3×.
This reads only the valid positions, once. Knows nothing about the model beyond the tensor layout.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

# positions a program loads at once; 64 × D=64 × 2 bytes = 8 KiB of K per step in bf16
_BLOCK_N = 64
# enough (sequence, KV head, split) programs to cover an H200's 132 SMs about twice at batch 1 with 3 KV heads
_TARGET_PROGRAMS = 264


@triton.jit
def _decode_attention_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    slots_ptr,
    seq_lens_ptr,
    part_out_ptr,
    part_lse_ptr,
    q_stride_b,
    q_stride_h,
    k_stride_slot,
    k_stride_h,
    k_stride_t,
    v_stride_slot,
    v_stride_h,
    v_stride_t,
    scale_log2,
    head_dim,
    group,
    split_len,
    n_splits,
    BLOCK_G: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    b = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    n_q_heads = tl.num_programs(1) * group

    seq_len = tl.load(seq_lens_ptr + b)
    slot = tl.load(slots_ptr + b).to(tl.int64)
    start = split * split_len
    end = tl.minimum(start + split_len, seq_len)

    g = tl.arange(0, BLOCK_G)
    d = tl.arange(0, BLOCK_D)
    q_heads = kv_head * group + g  # the query heads that read this KV head
    g_mask = g < group
    d_mask = d < head_dim
    q = tl.load(
        q_ptr + b.to(tl.int64) * q_stride_b + q_heads[:, None] * q_stride_h + d[None, :],
        mask=g_mask[:, None] & d_mask[None, :],
        other=0.0,
    ).to(tl.float32)  # (BLOCK_G, BLOCK_D)

    m = tl.full((BLOCK_G,), float("-inf"), tl.float32)
    l_sum = tl.zeros((BLOCK_G,), tl.float32)
    acc = tl.zeros((BLOCK_G, BLOCK_D), tl.float32)
    k_base = k_ptr + slot * k_stride_slot + kv_head.to(tl.int64) * k_stride_h
    v_base = v_ptr + slot * v_stride_slot + kv_head.to(tl.int64) * v_stride_h
    n = tl.arange(0, BLOCK_N)
    for block_start in range(start, end, BLOCK_N):
        pos = block_start + n
        pos_mask = pos < end
        kv_mask = pos_mask[:, None] & d_mask[None, :]
        k = tl.load(k_base + pos[:, None].to(tl.int64) * k_stride_t + d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_base + pos[:, None].to(tl.int64) * v_stride_t + d[None, :], mask=kv_mask, other=0.0)
        # scores in log2 units: exp2 is the native instruction, scale_log2 = scale * log2(e)
        s = tl.sum(q[:, None, :] * k.to(tl.float32)[None, :, :], axis=2) * scale_log2  # (BLOCK_G, BLOCK_N)
        s = tl.where(pos_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, axis=1))
        alpha = tl.exp2(m - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_sum = l_sum * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.sum(p[:, :, None] * v.to(tl.float32)[None, :, :], axis=1)
        m = m_new

    # an empty split (start >= seq_len) leaves l_sum = 0: its log-sum-exp is -inf and its output 0
    has_any = l_sum > 0
    out = tl.where(has_any[:, None], acc / tl.where(has_any, l_sum, 1.0)[:, None], 0.0)
    lse = tl.where(has_any, m + tl.log2(tl.where(has_any, l_sum, 1.0)), float("-inf"))
    row = (b * n_q_heads + q_heads).to(tl.int64) * n_splits + split  # part_* are (B, Hq, n_splits[, D])
    tl.store(part_out_ptr + row[:, None] * head_dim + d[None, :], out, mask=g_mask[:, None] & d_mask[None, :])
    tl.store(part_lse_ptr + row, lse, mask=g_mask)


@triton.jit
def _merge_splits_kernel(
    part_out_ptr,
    part_lse_ptr,
    out_ptr,
    out_stride_b,
    out_stride_h,
    head_dim,
    n_splits,
    BLOCK_S: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    b = tl.program_id(0)
    h = tl.program_id(1)
    row = b.to(tl.int64) * tl.num_programs(1) + h
    s = tl.arange(0, BLOCK_S)
    d = tl.arange(0, BLOCK_D)
    s_mask = s < n_splits
    lse = tl.load(part_lse_ptr + row * n_splits + s, mask=s_mask, other=float("-inf"))
    weight = tl.exp2(lse - tl.max(lse, axis=0))  # split 0 always holds position 0, so the max is finite
    parts = tl.load(
        part_out_ptr + (row * n_splits + s[:, None]) * head_dim + d[None, :],
        mask=s_mask[:, None] & (d[None, :] < head_dim),
        other=0.0,
    )
    out = tl.sum(parts * weight[:, None], axis=0) / tl.sum(weight, axis=0)
    tl.store(
        out_ptr + b.to(tl.int64) * out_stride_b + h * out_stride_h + d,
        out.to(out_ptr.dtype.element_ty),
        mask=d < head_dim,
    )


def _split_len(batch: int, n_kv_heads: int, max_len: int) -> int:
    """Positions per split: a multiple of _BLOCK_N, chosen from the cache size alone (no sync on seq_lens)."""
    wanted_splits = max(1, _TARGET_PROGRAMS // (batch * n_kv_heads))
    blocks = triton.cdiv(max_len, _BLOCK_N)
    return _BLOCK_N * triton.cdiv(blocks, min(wanted_splits, blocks))


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slots: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
    split_len: int | None = None,
) -> torch.Tensor:
    """(B, Hq, D) attention output; see `kernels.reference.decode_attention`. split_len (positions per split,
    a multiple of 64) overrides the heuristic, for tests."""
    batch, n_q_heads, head_dim = q.shape
    _, n_kv_heads, max_len, _ = k_cache.shape
    if n_q_heads % n_kv_heads:
        raise ValueError(f"{n_q_heads} query heads is not a multiple of {n_kv_heads} KV heads")
    if q.stride(-1) != 1 or k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1:
        raise ValueError("decode_attention needs q and the caches contiguous in the head dimension")
    group = n_q_heads // n_kv_heads
    split_len = split_len or _split_len(batch, n_kv_heads, max_len)
    n_splits = triton.cdiv(max_len, split_len)
    part_out = torch.empty((batch, n_q_heads, n_splits, head_dim), dtype=torch.float32, device=q.device)
    part_lse = torch.empty((batch, n_q_heads, n_splits), dtype=torch.float32, device=q.device)
    block_d = triton.next_power_of_2(head_dim)
    _decode_attention_kernel[(batch, n_kv_heads, n_splits)](
        q,
        k_cache,
        v_cache,
        slots,
        seq_lens,
        part_out,
        part_lse,
        q.stride(0),
        q.stride(1),
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        v_cache.stride(0),
        v_cache.stride(1),
        v_cache.stride(2),
        scale * math.log2(math.e),
        head_dim,
        group,
        split_len,
        n_splits,
        BLOCK_G=triton.next_power_of_2(group),
        BLOCK_N=_BLOCK_N,
        BLOCK_D=block_d,
        num_warps=4,
    )
    out = torch.empty((batch, n_q_heads, head_dim), dtype=q.dtype, device=q.device)
    _merge_splits_kernel[(batch, n_q_heads)](
        part_out,
        part_lse,
        out,
        out.stride(0),
        out.stride(1),
        head_dim,
        n_splits,
        BLOCK_S=triton.next_power_of_2(n_splits),
        BLOCK_D=block_d,
        num_warps=1,
    )
    return out
