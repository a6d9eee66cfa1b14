"""The one place that decides, per call, whether a kernel runs as Triton or as its PyTorch reference.

Rule: Triton when the tensors are on a CUDA device, the reference otherwise. Overrides, strongest first:

1. `use_backend("triton" | "torch")`, a context manager for code and tests (Triton on CPU tensors runs in Triton's
   interpreter, which this module switches on if Triton has not been loaded yet);
2. `KERNELS_FORCE_REFERENCE=1` in the environment: the reference everywhere;
3. `KERNELS_FORCE_TRITON=1`: Triton everywhere, CPU tensors through the interpreter.

Every public function has the signature of its twin in `kernels.reference`. Importing this module does not import
Triton: the Triton launchers (`kernels.ops`) are loaded on the first call that needs them, so a machine without a GPU
(or without a working Triton) can use the references. This module knows nothing about the model or the engine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Literal

import torch

from kernels import reference

Backend = Literal["triton", "torch"]
BACKENDS: tuple[Backend, ...] = ("triton", "torch")

_override: Backend | None = None
_ops: ModuleType | None = None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def backend_for(tensor: torch.Tensor) -> Backend:
    """Which backend a kernel called on `tensor` runs: "triton" or "torch" (the reference)."""
    if _override is not None:
        return _override
    if _env_flag("KERNELS_FORCE_REFERENCE"):
        return "torch"
    if _env_flag("KERNELS_FORCE_TRITON"):
        return "triton"
    return "triton" if tensor.is_cuda else "torch"


@contextlib.contextmanager
def use_backend(backend: Backend | None) -> Iterator[None]:
    """Force `backend` for every call inside the block (None restores the automatic rule); nests and restores."""
    global _override
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    previous, _override = _override, backend
    try:
        yield
    finally:
        _override = previous


def _triton_ops(tensor: torch.Tensor) -> ModuleType:
    """The Triton launchers, imported on first use; CPU tensors need the interpreter, switched on before the import.

    Raises RuntimeError for CPU tensors while the interpreter is off (on a CUDA machine, where Triton compiles for the
    GPU): launched, the kernel would read host pointers as device addresses.
    """
    global _ops
    if _ops is None:
        if not tensor.is_cuda and not torch.cuda.is_available():
            # Triton reads TRITON_INTERPRET when a kernel is decorated, i.e. when kernels.ops is first imported.
            os.environ.setdefault("TRITON_INTERPRET", "1")
        from kernels import ops

        _ops = ops
    if not tensor.is_cuda and not _env_flag("TRITON_INTERPRET"):
        raise RuntimeError(
            "Triton was asked to run on CPU tensors with its interpreter off (TRITON_INTERPRET is set only without "
            "CUDA): put the tensors on the GPU, or use the torch backend"
        )
    return _ops


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, residual_out): fused residual add + RMSNorm; see `kernels.reference.rms_norm`."""
    if backend_for(x) == "triton":
        return _triton_ops(x).rms_norm(x, weight, eps, residual)
    return reference.rms_norm(x, weight, eps, residual)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """Rotary embedding on q and k in place; see `kernels.reference.apply_rotary`."""
    if backend_for(q) == "triton":
        _triton_ops(q).apply_rotary(q, k, cos, sin)
    else:
        reference.apply_rotary(q, k, cos, sin)


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slots: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """(B, Hq, D) attention of each sequence's new token over its KV cache; see `kernels.reference.decode_attention`."""
    if backend_for(q) == "triton":
        return _triton_ops(q).decode_attention(q, k_cache, v_cache, slots, seq_lens, scale)
    return reference.decode_attention(q, k_cache, v_cache, slots, seq_lens, scale)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up; see `kernels.reference.swiglu`."""
    if backend_for(gate) == "triton":
        return _triton_ops(gate).swiglu(gate, up)
    return reference.swiglu(gate, up)


def q4_1_matmul(x: torch.Tensor, blocks: torch.Tensor, n_out: int, n_in: int) -> torch.Tensor:
    """(M, n_out) = x @ W.T with W as GGUF Q4_1 blocks; see `kernels.reference.q4_1_matmul`."""
    if backend_for(x) == "triton":
        return _triton_ops(x).q4_1_matmul(x, blocks, n_out, n_in)
    return reference.q4_1_matmul(x, blocks, n_out, n_in)


def sample(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    uniform: torch.Tensor,
) -> torch.Tensor:
    """(B,) int64 sampled token ids; see `kernels.reference.sample`."""
    if backend_for(logits) == "triton":
        return _triton_ops(logits).sample(logits, temperature, top_k, top_p, uniform)
    return reference.sample(logits, temperature, top_k, top_p, uniform)


q4_1_dequantize = reference.q4_1_dequantize
