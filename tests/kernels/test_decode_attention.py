import math

import pytest
import torch

from kernels import reference
from kernels.ops import decode_attention


def _cache(n_slots, n_kv_heads, max_len, head_dim, dtype, device):
    k = torch.randn(n_slots, n_kv_heads, max_len, head_dim, dtype=dtype, device=device)
    v = torch.randn(n_slots, n_kv_heads, max_len, head_dim, dtype=dtype, device=device)
    return k, v


@pytest.mark.parametrize(
    "n_q_heads, n_kv_heads, head_dim, seq_lens, split_len",
    [
        (9, 3, 64, [1, 130, 200], None),  # the model's heads; lengths of a continuous batch
        (9, 3, 64, [200, 7, 64, 65], 64),  # several splits per sequence, lengths on and beside split edges
        (6, 1, 24, [33], None),  # odd shapes: multi-query, head_dim 24, one sequence
        (4, 4, 40, [1, 2], 64),  # plain multi-head attention, decode at the very start
    ],
)
@pytest.mark.parametrize(
    "dtype, atol, rtol",
    [(torch.float32, 1e-5, 1e-5), (torch.bfloat16, 2e-2, 2e-2), (torch.float16, 2e-3, 2e-3)],
)
def test_decode_attention_matches_reference(
    n_q_heads, n_kv_heads, head_dim, seq_lens, split_len, dtype, atol, rtol, device
):
    """Split-K, grouped-query decode attention equals the reference for sequences of different lengths."""
    batch, max_len = len(seq_lens), 200
    k_cache, v_cache = _cache(batch + 2, n_kv_heads, max_len, head_dim, dtype, device)
    slots = torch.randperm(batch + 2, device=device)[:batch]  # sequences live in arbitrary slots
    lens = torch.tensor(seq_lens, dtype=torch.int32, device=device)
    q = torch.randn(batch, n_q_heads, head_dim, dtype=dtype, device=device)
    scale = 1 / math.sqrt(head_dim)

    out = decode_attention(q, k_cache, v_cache, slots, lens, scale, split_len=split_len)
    assert out.shape == q.shape and out.dtype == dtype
    torch.testing.assert_close(
        out, reference.decode_attention(q, k_cache, v_cache, slots, lens, scale), atol=atol, rtol=rtol
    )


def test_positions_past_seq_len_are_ignored(device):
    """Whatever lies in the cache past a sequence's length (an earlier chat's stale tokens) changes nothing."""
    k_cache, v_cache = _cache(2, 3, 192, 64, torch.float32, device)
    slots = torch.tensor([1, 0], device=device)
    lens = torch.tensor([70, 5], dtype=torch.int32, device=device)
    q = torch.randn(2, 9, 64, device=device)
    clean = decode_attention(q, k_cache, v_cache, slots, lens, 0.125, split_len=64)
    for slot, n in ((1, 70), (0, 5)):
        k_cache[slot, :, n:] = 1e4
        v_cache[slot, :, n:] = -1e4
    dirty = decode_attention(q, k_cache, v_cache, slots, lens, 0.125, split_len=64)
    torch.testing.assert_close(dirty, clean, atol=0, rtol=0)


def test_decode_attention_long_context(device):
    """A 2,048-position context split by the launcher's own heuristic equals the reference (flash-decoding path)."""
    k_cache, v_cache = _cache(2, 3, 2048, 64, torch.float32, device)
    slots = torch.tensor([1, 0], device=device)
    lens = torch.tensor([2048, 1500], dtype=torch.int32, device=device)
    q = torch.randn(2, 9, 64, device=device)
    out = decode_attention(q, k_cache, v_cache, slots, lens, 0.125)
    torch.testing.assert_close(
        out, reference.decode_attention(q, k_cache, v_cache, slots, lens, 0.125), atol=1e-5, rtol=1e-5
    )
