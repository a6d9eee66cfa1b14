import pytest
import torch

from kernels import reference
from kernels.ops import swiglu


@pytest.mark.parametrize(
    "shape",
    [
        (4, 1536),  # the model's MLP width
        (1, 1536),  # batch-1 decode
        (3, 7, 123),  # odd shapes
        (2, 2500),  # wider than one 1024-column program
    ],
)
@pytest.mark.parametrize(
    "dtype, atol, rtol",
    [
        (torch.float32, 1e-6, 1e-5),
        # the kernel rounds once, the reference twice (silu, then the product)
        (torch.bfloat16, 2e-2, 2e-2),
        (torch.float16, 2e-3, 2e-3),
    ],
)
def test_swiglu_matches_reference(shape, dtype, atol, rtol, device):
    """silu(gate) * up from Triton equals the reference."""
    gate = torch.randn(shape, dtype=dtype, device=device) * 3
    up = torch.randn(shape, dtype=dtype, device=device)
    out = swiglu(gate, up)
    assert out.shape == gate.shape and out.dtype == dtype
    torch.testing.assert_close(out, reference.swiglu(gate, up), atol=atol, rtol=rtol)


def test_swiglu_reads_halves_of_a_fused_projection(device):
    """gate and up as the two halves of one fused gate/up output (strided views) give the same result."""
    fused = torch.randn(3, 2 * 300, device=device)
    gate, up = fused[:, :300], fused[:, 300:]
    torch.testing.assert_close(swiglu(gate, up), reference.swiglu(gate, up), atol=1e-6, rtol=1e-5)
