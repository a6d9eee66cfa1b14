"""Rotary position embedding in Triton, HF "rotate_half" (NeoX) layout, applied to q and k in place.

One program per token rotates all of its query and key heads, reading cos/sin once: the naive torch version
(`kernels.reference.apply_rotary`) materialises x1 * cos, x2 * sin, the concatenation and a copy back, about 6 passes
and 10 launches for q and k together, where this makes one read and one write of each. q and k may be strided views
(heads of a fused qkv projection) as long as the head dimension is contiguous. Knows nothing about the model.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rotate_heads(x_ptr, x_stride_h, n_heads, cos, sin, half_dim, BLOCK_H: tl.constexpr, BLOCK_HALF: tl.constexpr):
    heads = tl.arange(0, BLOCK_H)
    cols = tl.arange(0, BLOCK_HALF)
    mask = (heads[:, None] < n_heads) & (cols[None, :] < half_dim)
    ptr1 = x_ptr + heads[:, None] * x_stride_h + cols[None, :]  # (BLOCK_H, BLOCK_HALF): the first half of each head
    x1 = tl.load(ptr1, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(ptr1 + half_dim, mask=mask, other=0.0).to(tl.float32)
    tl.store(ptr1, (x1 * cos[None, :] - x2 * sin[None, :]).to(x_ptr.dtype.element_ty), mask=mask)
    tl.store(ptr1 + half_dim, (x2 * cos[None, :] + x1 * sin[None, :]).to(x_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _rotary_kernel(
    q_ptr,
    k_ptr,
    cos_ptr,
    sin_ptr,
    q_stride_b,
    q_stride_t,
    q_stride_h,
    k_stride_b,
    k_stride_t,
    k_stride_h,
    cos_stride_b,
    cos_stride_t,
    n_tokens,
    n_q_heads,
    n_k_heads,
    half_dim,
    BLOCK_HQ: tl.constexpr,
    BLOCK_HK: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
):
    token = tl.program_id(0)
    b = (token // n_tokens).to(tl.int64)
    t = (token % n_tokens).to(tl.int64)
    cols = tl.arange(0, BLOCK_HALF)
    angle_offset = b * cos_stride_b + t * cos_stride_t + cols
    cos = tl.load(cos_ptr + angle_offset, mask=cols < half_dim, other=0.0).to(tl.float32)
    sin = tl.load(sin_ptr + angle_offset, mask=cols < half_dim, other=0.0).to(tl.float32)
    _rotate_heads(
        q_ptr + b * q_stride_b + t * q_stride_t, q_stride_h, n_q_heads, cos, sin, half_dim, BLOCK_HQ, BLOCK_HALF
    )
    _rotate_heads(
        k_ptr + b * k_stride_b + t * k_stride_t, k_stride_h, n_k_heads, cos, sin, half_dim, BLOCK_HK, BLOCK_HALF
    )


def apply_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """Rotate q (B, T, Hq, D) and k (B, T, Hk, D) in place by cos, sin (B, T, D // 2)."""
    if q.stride(-1) != 1 or k.stride(-1) != 1:
        raise ValueError("apply_rotary needs q and k contiguous in the head dimension (it writes in place)")
    batch, n_tokens, n_q_heads, head_dim = q.shape
    n_k_heads = k.shape[2]
    half_dim = head_dim // 2
    cos = cos if cos.stride(-1) == 1 else cos.contiguous()
    sin = sin if sin.stride(-1) == 1 else sin.contiguous()
    if cos.stride() != sin.stride():
        cos, sin = cos.contiguous(), sin.contiguous()
    _rotary_kernel[(batch * n_tokens,)](
        q,
        k,
        cos,
        sin,
        q.stride(0),
        q.stride(1),
        q.stride(2),
        k.stride(0),
        k.stride(1),
        k.stride(2),
        cos.stride(0),
        cos.stride(1),
        n_tokens,
        n_q_heads,
        n_k_heads,
        half_dim,
        BLOCK_HQ=triton.next_power_of_2(n_q_heads),
        BLOCK_HK=triton.next_power_of_2(n_k_heads),
        BLOCK_HALF=triton.next_power_of_2(half_dim),
        num_warps=2,
    )
