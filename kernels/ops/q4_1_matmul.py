"""y = x @ W.T with W held as GGUF Q4_1 blocks exactly as stored, dequantized in registers: a GEMV for one row of x
(batch-1 decode) and a small-M GEMM (batched decode, prefill).

Block layout (20 bytes per 32 weights): fp16 scale d, fp16 minimum m, 16 bytes of nibbles, byte j holding weight j
(low nibble) and weight j + 16 (high nibble); w = d * q + m. The kernels read the blocks as 5 little-endian int32
words: word 0 is d | m << 16, words 1..4 carry the nibbles, weight 4w + c (+ 16 for the high nibble) in byte c of
word w. Every row of blocks is n_in * 5 / 8 bytes, a multiple of 4 because n_in is a multiple of 32.

The naive torch version (`kernels.reference.q4_1_matmul`) dequantizes W to fp32 (8 bytes written and read back per
weight on top of the 0.625 stored) before a dense matmul; these kernels read 0.625 bytes a weight, 3.2× fewer than a
bf16 matmul of the same shape. Knows nothing about the model or the dispatch.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

_WORDS_PER_BLOCK = 5  # 20 bytes
_WEIGHTS_PER_BLOCK = 32


@triton.jit
def _nibble_x_offsets(blk, word, s):
    """Column of x that nibble s (0..7, low nibble first) of quant word `word` (0..3) of block `blk` multiplies."""
    return blk * 32 + 4 * word + s // 2 + 16 * (s % 2)


@triton.jit
def _load_block_scales(w_ptr, rows, row_mask, w_stride, blk, blk_mask):
    """(d, m) in fp32, each (len(rows), len(blk)): word 0 of each block is the fp16 pair d | m << 16."""
    dm = tl.load(
        w_ptr + rows[:, None] * w_stride + blk[None, :] * 5, mask=row_mask[:, None] & blk_mask[None, :], other=0
    )
    d = dm.to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
    m = (dm >> 16).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
    return d, m


@triton.jit
def _q4_1_gemv_kernel(
    x_ptr,
    w_ptr,
    y_ptr,
    x_stride,
    y_stride,
    w_stride,
    n_out,
    n_blocks,
    BLOCK_N: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    pid_n = tl.program_id(0)
    row_x = tl.program_id(1).to(tl.int64)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < n_out
    rows = rows.to(tl.int64)
    qw = tl.arange(0, BLOCK_B * 4)  # (block, quant word) pairs of one step
    blk_in_step = qw // 4
    word = qw % 4
    s = tl.arange(0, 8)
    acc = tl.zeros((BLOCK_N,), tl.float32)
    for b0 in range(0, n_blocks, BLOCK_B):
        blk = b0 + blk_in_step
        blk_mask = blk < n_blocks
        words = tl.load(
            w_ptr + rows[:, None] * w_stride + (blk * 5 + 1 + word)[None, :],
            mask=row_mask[:, None] & blk_mask[None, :],
            other=0,
        )  # (BLOCK_N, BLOCK_B * 4) int32
        q = ((words[:, :, None] >> (4 * s)[None, None, :]) & 0xF).to(tl.float32)  # (BLOCK_N, BLOCK_B * 4, 8)
        x_cols = _nibble_x_offsets(blk[:, None], word[:, None], s[None, :])  # (BLOCK_B * 4, 8)
        x = tl.load(x_ptr + row_x * x_stride + x_cols, mask=blk_mask[:, None], other=0.0).to(tl.float32)
        qx = tl.sum(tl.reshape(tl.sum(q * x[None, :, :], axis=2), (BLOCK_N, BLOCK_B, 4)), axis=2)  # (BLOCK_N, BLOCK_B)
        x_sum = tl.sum(tl.reshape(x, (BLOCK_B, 32)), axis=1)  # (BLOCK_B,): multiplies the block minimum
        steps = b0 + tl.arange(0, BLOCK_B)
        d, m = _load_block_scales(w_ptr, rows, row_mask, w_stride, steps, steps < n_blocks)
        acc += tl.sum(d * qx + m * x_sum[None, :], axis=1)
    tl.store(y_ptr + row_x * y_stride + rows, acc.to(y_ptr.dtype.element_ty), mask=row_mask)


@triton.jit
def _q4_1_gemm_kernel(
    x_ptr,
    w_ptr,
    y_ptr,
    n_rows,
    x_stride,
    y_stride,
    w_stride,
    n_out,
    n_blocks,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_B: tl.constexpr,
    DOT_IN_FP32: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows_x = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    x_mask = rows_x < n_rows
    rows_x = rows_x.to(tl.int64)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < n_out
    rows = rows.to(tl.int64)
    qw = tl.arange(0, BLOCK_B * 4)
    blk_in_step = qw // 4
    word = qw % 4
    s = tl.arange(0, 8)
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for b0 in range(0, n_blocks, BLOCK_B):
        blk = b0 + blk_in_step
        blk_mask = blk < n_blocks
        words = tl.load(
            w_ptr + rows[:, None] * w_stride + (blk * 5 + 1 + word)[None, :],
            mask=row_mask[:, None] & blk_mask[None, :],
            other=0,
        )
        q = ((words[:, :, None] >> (4 * s)[None, None, :]) & 0xF).to(tl.float32)  # (BLOCK_N, BLOCK_B * 4, 8)
        steps = b0 + tl.arange(0, BLOCK_B)
        d, m = _load_block_scales(w_ptr, rows, row_mask, w_stride, steps, steps < n_blocks)
        w = tl.reshape(q, (BLOCK_N, BLOCK_B, 32)) * d[:, :, None] + m[:, :, None]
        w = tl.reshape(w, (BLOCK_N, BLOCK_B * 32))  # columns in nibble order
        # load x in the same nibble order, so the dot pairs each weight with its own column of x
        x_cols = tl.reshape(_nibble_x_offsets(blk[:, None], word[:, None], s[None, :]), (BLOCK_B * 32,))
        x_col_mask = tl.reshape(blk_mask[:, None] & (s[None, :] < 8), (BLOCK_B * 32,))
        x = tl.load(
            x_ptr + rows_x[:, None] * x_stride + x_cols[None, :],
            mask=x_mask[:, None] & x_col_mask[None, :],
            other=0.0,
        )  # (BLOCK_M, BLOCK_B * 32)
        if DOT_IN_FP32:
            x = x.to(tl.float32)
        else:
            w = w.to(x_ptr.dtype.element_ty)
        acc = tl.dot(x, tl.trans(w), acc, input_precision=DOT_PRECISION)
    tl.store(
        y_ptr + rows_x[:, None] * y_stride + rows[None, :],
        acc.to(y_ptr.dtype.element_ty),
        mask=x_mask[:, None] & row_mask[None, :],
    )


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def _as_words(blocks: torch.Tensor, n_out: int, n_in: int) -> torch.Tensor:
    """The blocks as (n_out, n_in // 32 * 5) int32 words, copying only if they are not 4-byte aligned rows."""
    row_bytes = n_in // _WEIGHTS_PER_BLOCK * 20
    blocks = blocks.reshape(n_out, row_bytes)
    if blocks.stride(-1) != 1 or blocks.stride(0) % 4 or blocks.data_ptr() % 4:
        blocks = blocks.clone(memory_format=torch.contiguous_format)
    return blocks.view(torch.int32)


def q4_1_matmul(x: torch.Tensor, blocks: torch.Tensor, n_out: int, n_in: int) -> torch.Tensor:
    """(M, n_out) = x (M, n_in) @ W.T, W as Q4_1 blocks (uint8, (n_out, n_in // 32 * 20)); y in x.dtype."""
    if n_in % _WEIGHTS_PER_BLOCK:
        raise ValueError(f"n_in={n_in} is not a multiple of the Q4_1 block size 32")
    words = _as_words(blocks, n_out, n_in)
    x2 = x.reshape(-1, n_in)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    n_rows = x2.shape[0]
    n_blocks = n_in // _WEIGHTS_PER_BLOCK
    y = torch.empty((n_rows, n_out), dtype=x.dtype, device=x.device)
    if n_rows == 1:
        # 8 output rows a program: the model's 576×576 projections still make 72 programs; 8 blocks (256 weights,
        # 160 bytes a row) a step
        block_n, block_b = 8, 8
        grid = (triton.cdiv(n_out, block_n), n_rows)
        _q4_1_gemv_kernel[grid](
            x2, words, y, x2.stride(0), y.stride(0), words.stride(0), n_out, n_blocks,
            BLOCK_N=block_n, BLOCK_B=block_b, num_warps=4,
        )  # fmt: skip
    else:
        # tl.dot needs at least 16 rows; 64 columns of W and 2 blocks (64 weights) of K a step
        block_m = min(max(triton.next_power_of_2(n_rows), 16), 64)
        block_n, block_b = 64, 2
        grid = (triton.cdiv(n_rows, block_m), triton.cdiv(n_out, block_n))
        _q4_1_gemm_kernel[grid](
            x2, words, y, n_rows, x2.stride(0), y.stride(0), words.stride(0), n_out, n_blocks,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_B=block_b,
            # Triton 3.9's interpreter multiplies bf16 dot operands as their raw uint16 bits: use fp32 there
            DOT_IN_FP32=x.dtype == torch.float32 or (x.dtype == torch.bfloat16 and _interpreting()),
            # fp32 activations stay exact (no TF32) so that fp32 results match the reference to 1e-4
            DOT_PRECISION="ieee" if x.dtype == torch.float32 else "tf32",
            num_warps=4,
        )  # fmt: skip
    return y.view(*x.shape[:-1], n_out)
