import pytest
import torch

from kernels import reference
from kernels.ops import apply_rotary


def _angles(batch, n_tokens, half_dim, device):
    positions = (
        torch.arange(n_tokens, dtype=torch.float32, device=device)[None, :]
        + torch.arange(batch, dtype=torch.float32, device=device)[:, None] * 7
    )  # each sequence at its own offset, as in continuous batching
    inv_freq = 1.0 / (100000.0 ** (torch.arange(half_dim, dtype=torch.float32, device=device) / half_dim))
    angle = positions[..., None] * inv_freq  # (B, T, D/2)
    return angle.cos(), angle.sin()


@pytest.mark.parametrize(
    "batch, n_tokens, n_q_heads, n_k_heads, head_dim",
    [
        (1, 13, 9, 3, 64),  # prefill with the model's heads
        (4, 1, 9, 3, 64),  # batched decode
        (2, 5, 5, 1, 24),  # odd shapes: 5 query heads, one KV head, D/2 = 12
    ],
)
@pytest.mark.parametrize(
    "dtype, atol, rtol",
    [(torch.float32, 1e-5, 1e-5), (torch.bfloat16, 1e-2, 1e-2), (torch.float16, 1e-3, 1e-3)],
)
def test_rotary_matches_reference_in_place(batch, n_tokens, n_q_heads, n_k_heads, head_dim, dtype, atol, rtol, device):
    """Triton rotates q and k in place exactly as the reference's rotate_half does."""
    q = torch.randn(batch, n_tokens, n_q_heads, head_dim, dtype=dtype, device=device)
    k = torch.randn(batch, n_tokens, n_k_heads, head_dim, dtype=dtype, device=device)
    cos, sin = _angles(batch, n_tokens, head_dim // 2, device)
    want_q, want_k = q.clone(), k.clone()
    reference.apply_rotary(want_q, want_k, cos, sin)

    q_before = q.clone()
    assert apply_rotary(q, k, cos, sin) is None
    assert not torch.equal(q, q_before)  # it really wrote in place
    torch.testing.assert_close(q, want_q, atol=atol, rtol=rtol)
    torch.testing.assert_close(k, want_k, atol=atol, rtol=rtol)


def test_rotary_on_views_of_a_fused_qkv(device):
    """q and k as head-strided views of one fused qkv projection are rotated in place inside it; v is untouched."""
    batch, n_tokens, head_dim = 2, 3, 64
    qkv = torch.randn(batch, n_tokens, (9 + 3 + 3) * head_dim, device=device)
    want = qkv.clone()
    q = qkv[..., : 9 * head_dim].view(batch, n_tokens, 9, head_dim)
    k = qkv[..., 9 * head_dim : 12 * head_dim].view(batch, n_tokens, 3, head_dim)
    wq = want[..., : 9 * head_dim].view(batch, n_tokens, 9, head_dim)
    wk = want[..., 9 * head_dim : 12 * head_dim].view(batch, n_tokens, 3, head_dim)
    cos, sin = _angles(batch, n_tokens, head_dim // 2, device)
    reference.apply_rotary(wq, wk, cos, sin)
    apply_rotary(q, k, cos, sin)
    torch.testing.assert_close(qkv, want, atol=1e-5, rtol=1e-5)


def test_rotary_at_position_zero_is_identity(device):
    """At position 0 (cos = 1, sin = 0) the rotation leaves q and k unchanged: the layout is not scrambled."""
    q = torch.randn(1, 1, 9, 64, device=device)
    k = torch.randn(1, 1, 3, 64, device=device)
    q0, k0 = q.clone(), k.clone()
    apply_rotary(q, k, torch.ones(1, 1, 32, device=device), torch.zeros(1, 1, 32, device=device))
    assert torch.equal(q, q0) and torch.equal(k, k0)
