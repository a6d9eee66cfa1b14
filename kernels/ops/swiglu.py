"""SwiGLU in Triton: silu(gate) * up in one pass, computed in fp32 and rounded once to the storage dtype.

The naive torch version (`kernels.reference.swiglu`) reads gate, writes silu(gate), reads it back with up and writes
the product: 5 tensor passes and 2 launches where this kernel makes 3 passes and 1 launch. gate and up may be views
into one fused gate/up projection (rows with a stride). Knows nothing about the model or the dispatch.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _swiglu_kernel(
    gate_ptr,
    up_ptr,
    out_ptr,
    gate_stride,
    up_stride,
    out_stride,
    n_cols,
    BLOCK_SIZE: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    g = tl.load(gate_ptr + row * gate_stride + cols, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(up_ptr + row * up_stride + cols, mask=mask, other=0.0).to(tl.float32)
    out = g * tl.sigmoid(g) * u
    tl.store(out_ptr + row * out_stride + cols, out.to(out_ptr.dtype.element_ty), mask=mask)


def _rows(t: torch.Tensor, n_cols: int) -> torch.Tensor:
    t2 = t.reshape(-1, n_cols)
    return t2 if t2.stride(-1) == 1 else t2.contiguous()


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up, same shape and dtype as gate."""
    n_cols = gate.shape[-1]
    g2, u2 = _rows(gate, n_cols), _rows(up, n_cols)
    out = torch.empty(g2.shape, dtype=gate.dtype, device=gate.device)
    # 1024 columns a program keeps a 1536-wide row (the model's MLP) at 2 programs and large tensors at full width
    block = min(triton.next_power_of_2(n_cols), 1024)
    grid = (g2.shape[0], triton.cdiv(n_cols, block))
    _swiglu_kernel[grid](g2, u2, out, g2.stride(0), u2.stride(0), out.stride(0), n_cols, BLOCK_SIZE=block, num_warps=4)
    return out.view(gate.shape)
