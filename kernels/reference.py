"""Plain-PyTorch references for every kernel in `kernels.ops`: the maths, stated once, that the Triton kernels must
reproduce.

These functions are the truth the Triton tests compare against, and the CPU path of the engine (dispatch picks them
when the tensors are not on a CUDA device). They are plain tensor operations (no Python loops over tokens, no
`.item()`), so `torch.compile` can trace them. This module must not import Triton, and knows nothing about the model,
the engine or the dispatch: tensors in, tensors out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# GGUF Q4_1: 32 weights per block, stored as fp16 scale d, fp16 minimum m, then 16 bytes of nibbles (20 bytes).
Q4_1_BLOCK_WEIGHTS = 32
Q4_1_BLOCK_BYTES = 20


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused residual add + RMSNorm over the last dimension.

    h = x + residual (or x); out = h * rsqrt(mean(h^2) + eps) * weight, computed in fp32 and returned in x.dtype.
    Returns (out, h): h is the new residual stream, in the promoted dtype of x and residual (an fp32 residual
    stream stays fp32 when x is bf16).
    """
    h = x if residual is None else x + residual
    hf = h.float()
    out = hf * torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + eps) * weight.float()
    return out.to(x.dtype), h


def _rotate_in_place(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    half = x.shape[-1] // 2
    xf = x.float()
    x1, x2 = xf[..., :half], xf[..., half:]
    x.copy_(torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1))


def apply_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """Rotary embedding, HF "rotate_half" (NeoX) layout, applied to q and k in place.

    q: (B, T, Hq, D), k: (B, T, Hk, D); cos, sin: (B, T, D // 2) fp32. With x1 = x[..., :D/2], x2 = x[..., D/2:]:
    out[..., :D/2] = x1 * cos - x2 * sin and out[..., D/2:] = x2 * cos + x1 * sin. T > 1 is prefill, T == 1 decode.
    """
    cos = cos.unsqueeze(-2)  # (B, T, 1, D/2): the same angle for every head
    sin = sin.unsqueeze(-2)
    _rotate_in_place(q, cos, sin)
    _rotate_in_place(k, cos, sin)


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slots: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Attention of one new query token per sequence over that sequence's cached keys and values.

    q: (B, Hq, D); k_cache, v_cache: (num_slots, Hk, max_len, D); slots: (B,) int64, the cache slot of each sequence;
    seq_lens: (B,) int32, how many cached positions are valid (the current token is already written). Grouped-query:
    query head h reads KV head h // (Hq // Hk). Returns (B, Hq, D) in q.dtype.
    """
    batch, n_q_heads, head_dim = q.shape
    k = k_cache.index_select(0, slots).float()  # (B, Hk, S, D)
    v = v_cache.index_select(0, slots).float()
    n_kv_heads, span = k.shape[1], k.shape[2]
    # Two grouped fp32 matmuls rather than scaled_dot_product_attention: for one query token per sequence, SDPA's
    # CPU kernel took 1.9 ms at 16 sequences of 101 positions against 0.16 ms here, and 7.2 ms against 1.2 ms at
    # 256 positions (/tmp measurements on this 2-core machine, best of 3): it was 42% of a batch-16 decode step.
    q_grouped = q.float().view(batch, n_kv_heads, n_q_heads // n_kv_heads, head_dim)  # (B, Hk, G, D)
    scores = torch.matmul(q_grouped, k.transpose(-1, -2)) * scale  # (B, Hk, G, S)
    invalid = torch.arange(span, device=q.device)[None, :] >= seq_lens[:, None]  # (B, S)
    scores = scores.masked_fill(invalid[:, None, None, :], float("-inf"))
    out = torch.matmul(scores.softmax(dim=-1), v)  # (B, Hk, G, D)
    return out.view(batch, n_q_heads, head_dim).to(q.dtype)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """SwiGLU: silu(gate) * up, elementwise, in gate.dtype."""
    return F.silu(gate) * up


def q4_1_dequantize(blocks: torch.Tensor, n_out: int, n_in: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """GGUF Q4_1 blocks, exactly as stored, to an (n_out, n_in) weight matrix.

    blocks: uint8 (n_out, n_in // 32 * 20). Each 20-byte block holds 32 weights: fp16 scale d, fp16 minimum m, then
    16 bytes where byte j carries weight j in its low nibble and weight j + 16 in its high nibble; w = d * q + m.
    """
    blk = blocks.reshape(n_out, n_in // Q4_1_BLOCK_WEIGHTS, Q4_1_BLOCK_BYTES)
    d = blk[..., 0:2].contiguous().view(torch.float16).float()  # (n_out, n_blocks, 1)
    m = blk[..., 2:4].contiguous().view(torch.float16).float()
    qs = blk[..., 4:]  # (n_out, n_blocks, 16)
    q = torch.cat((qs & 0x0F, qs >> 4), dim=-1).float()  # (n_out, n_blocks, 32): low nibbles are weights 0..15
    return (d * q + m).reshape(n_out, n_in).to(dtype)


def q4_1_matmul(x: torch.Tensor, blocks: torch.Tensor, n_out: int, n_in: int) -> torch.Tensor:
    """y = x @ W.T for W given as Q4_1 blocks (see q4_1_dequantize). x: (M, n_in) float; y: (M, n_out) in x.dtype.

    The product is accumulated in fp32 whatever x.dtype is.
    """
    w = q4_1_dequantize(blocks, n_out, n_in)
    return (x.float() @ w.T).to(x.dtype)


def sample(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    uniform: torch.Tensor,
) -> torch.Tensor:
    """One token per row by inverse-CDF sampling; (B,) int64.

    logits: (B, V); temperature: (B,) float, 0 means greedy (argmax, the first maximum); top_k: (B,) int, 0 = off;
    top_p: (B,) float, 1.0 = off; uniform: (B,) float in [0, 1), drawn by the caller.

    The distribution is softmax(logits / temperature) in fp32, sorted by descending probability (a stable sort:
    among equal probabilities the lower token id comes first). top-k keeps the first k; top-p then keeps each token
    whose preceding mass (renormalised over the top-k) is below top_p, so the most likely token always survives.
    The kept probabilities are renormalised and the token is the first whose cumulative probability exceeds uniform.
    """
    logits = logits.float()
    greedy = temperature <= 0
    safe_t = torch.where(greedy, torch.ones_like(temperature), temperature).float()
    probs = torch.softmax(logits / safe_t[:, None], dim=-1)  # (B, V)
    sorted_p, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    rank = torch.arange(probs.shape[-1], device=probs.device)[None, :]  # (1, V)

    k = torch.where(top_k > 0, top_k, probs.shape[-1]).to(rank.dtype)
    sorted_p = torch.where(rank < k[:, None], sorted_p, 0.0)
    mass_before = torch.cumsum(sorted_p, dim=-1) - sorted_p  # exclusive cumulative mass of the top-k
    keep_p = mass_before < top_p.float()[:, None] * sorted_p.sum(-1, keepdim=True)
    sorted_p = torch.where(keep_p | (rank == 0), sorted_p, 0.0)

    cdf = torch.cumsum(sorted_p, dim=-1)
    target = uniform.float()[:, None] * cdf[:, -1:]
    pick = (cdf <= target).sum(-1, keepdim=True).clamp_max(probs.shape[-1] - 1)  # first rank with cdf > target
    # a rounding-short cdf could point past the kept tokens; step back to the last kept one
    n_kept = (sorted_p > 0).sum(-1, keepdim=True).clamp_min(1)
    pick = torch.minimum(pick, n_kept - 1)
    sampled = order.gather(-1, pick).squeeze(-1)
    return torch.where(greedy, logits.argmax(-1), sampled)
