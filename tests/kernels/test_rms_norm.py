import pytest
import torch

from kernels import reference
from kernels.ops import rms_norm


@pytest.mark.parametrize(
    "shape",
    [
        (2, 8, 576),  # the model's hidden size, a batch of tokens
        (1, 576),  # one row: batch-1 decode
        (3, 123),  # odd shapes: a width that is not a power of two
        (5, 1, 1000),
    ],
)
@pytest.mark.parametrize(
    "dtype, atol, rtol",
    [
        (torch.float32, 1e-5, 1e-5),
        # two bf16 steps (2^-7 relative each): the interpreter truncates h and out where torch rounds to nearest
        (torch.bfloat16, 2e-2, 2e-2),
        (torch.float16, 2e-3, 2e-3),
    ],
)
@pytest.mark.parametrize("with_residual", [True, False])
def test_rms_norm_matches_reference(shape, dtype, atol, rtol, with_residual, device):
    """The Triton RMSNorm (with and without the fused residual add) equals the reference, output and residual."""
    x = torch.randn(shape, dtype=dtype, device=device)
    residual = torch.randn(shape, dtype=dtype, device=device) if with_residual else None
    weight = torch.rand(shape[-1], dtype=torch.float32, device=device) + 0.5

    out, residual_out = rms_norm(x, weight, 1e-5, residual)
    want_out, want_residual = reference.rms_norm(x, weight, 1e-5, residual)

    assert out.dtype == dtype and out.shape == x.shape
    torch.testing.assert_close(out, want_out, atol=atol, rtol=rtol)
    # x + residual is rounded once to dtype: exact, except that Triton 3.9's interpreter truncates fp32 -> bf16
    # where the GPU rounds to nearest, one bf16 step (2^-7 relative) apart
    step = 2**-7 if dtype == torch.bfloat16 and x.device.type == "cpu" else 0.0
    torch.testing.assert_close(residual_out, want_residual, atol=0, rtol=step)


def test_rms_norm_reads_strided_rows(device):
    """Rows taken from a wider tensor (a row stride larger than the width) are normalised like contiguous ones."""
    wide = torch.randn(4, 200, device=device)
    x = wide[:, :150]
    weight = torch.randn(150, device=device)
    out, _ = rms_norm(x, weight, 1e-6)
    torch.testing.assert_close(out, reference.rms_norm(x.contiguous(), weight, 1e-6)[0], atol=1e-5, rtol=1e-5)


def test_bf16_input_keeps_an_fp32_residual_stream(device):
    """With bf16 activations and an fp32 residual, the new residual stays fp32 and equals the reference."""
    x = torch.randn(3, 96, device=device).to(torch.bfloat16)
    residual = torch.randn(3, 96, device=device)
    weight = torch.rand(96, device=device) + 0.5
    out, residual_out = rms_norm(x, weight, 1e-5, residual)
    expected_out, expected_residual = reference.rms_norm(x, weight, 1e-5, residual)
    assert out.dtype == torch.bfloat16 and residual_out.dtype == torch.float32
    torch.testing.assert_close(residual_out, expected_residual)
    torch.testing.assert_close(out.float(), expected_out.float(), atol=2e-2, rtol=2e-2)
