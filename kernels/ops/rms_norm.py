"""Fused residual add + RMSNorm in Triton: one read of x and residual, one write of out and of the new residual.

The naive torch version (`kernels.reference.rms_norm`) reads x and residual, writes h, reads h again for the mean of
squares, reads it a third time to scale and writes out: about 5 passes over a row where this kernel makes 4 (2 reads,
2 writes) and launches once instead of about 8 times. Knows nothing about the model or the dispatch.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rms_norm_kernel(
    x_ptr,
    residual_ptr,
    weight_ptr,
    out_ptr,
    residual_out_ptr,
    x_stride,
    residual_stride,
    out_stride,
    residual_out_stride,
    n_cols,
    eps,
    HAS_RESIDUAL: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * x_stride + cols, mask=mask, other=0.0)
    if HAS_RESIDUAL:
        r = tl.load(residual_ptr + row * residual_stride + cols, mask=mask, other=0.0)
        # round the sum to the residual's storage dtype first (the wider of x's and residual's, as `x + residual`
        # promotes in torch), so that out is computed from the same values as the reference's
        h = (x.to(tl.float32) + r.to(tl.float32)).to(residual_out_ptr.dtype.element_ty)
        tl.store(residual_out_ptr + row * residual_out_stride + cols, h, mask=mask)
    else:
        h = x
    hf = h.to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(hf * hf, axis=0) / n_cols + eps)
    w = tl.load(weight_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * out_stride + cols, (hf * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, residual_out) = (RMSNorm(x + residual) * weight, x + residual); rows are the last dimension of x."""
    shape = x.shape
    n_cols = shape[-1]
    x2 = x.reshape(-1, n_cols)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    n_rows = x2.shape[0]
    out = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    if residual is None:
        r2, residual_out = x2, x2  # residual_out is x itself: nothing to write
    else:
        r2 = residual.reshape(-1, n_cols)
        if r2.stride(-1) != 1:
            r2 = r2.contiguous()
        # The new residual stream keeps the wider of the two dtypes, as `x + residual` does in the reference: the
        # engine feeds bf16 activations into an fp32 residual stream, and storing it in bf16 loses precision.
        residual_out = torch.empty((n_rows, n_cols), dtype=torch.result_type(x, residual), device=x.device)
    block = triton.next_power_of_2(n_cols)
    # one warp per 256 fp32 columns, 1..16 warps: 576 columns (the model's hidden size) get 2 warps
    num_warps = min(max(block // 256, 1), 16)
    _rms_norm_kernel[(n_rows,)](
        x2,
        r2,
        weight.contiguous(),
        out,
        residual_out,
        x2.stride(0),
        r2.stride(0),
        out.stride(0),
        residual_out.stride(0),
        n_cols,
        eps,
        HAS_RESIDUAL=residual is not None,
        BLOCK_SIZE=block,
        num_warps=num_warps,
    )
    if residual is None:
        return out.view(shape), x
    return out.view(shape), residual_out.view(shape)
