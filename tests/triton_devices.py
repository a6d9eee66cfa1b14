"""Where the tests that run Triton kernels put their tensors, on both kinds of machine.

Without CUDA, Triton runs in its interpreter (`TRITON_INTERPRET=1`, numpy on CPU tensors); with CUDA, Triton compiles
for the GPU and a kernel handed CPU tensors would be launched on host pointers. So a Triton test runs on CPU tensors
only where the interpreter is on, and on CUDA tensors where a GPU is present: never the other way round.

Imported by the conftests of `tests/kernels` and `tests/demo_engine/engine` before anything imports Triton (Triton
reads `TRITON_INTERPRET` when a kernel is decorated). Imports only torch and pytest, so `kernels/gpu_check.sh` can run
these tests in an environment without Django or Redis.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

import pytest
import torch


def interpreter_wanted(cuda_available: bool) -> bool:
    """True when Triton must run in its interpreter: there is no CUDA device to compile for."""
    return not cuda_available


def set_interpreter(cuda_available: bool, environ: MutableMapping[str, str] = os.environ) -> None:
    """Switch Triton's interpreter on when there is no CUDA device (an explicit TRITON_INTERPRET is left alone)."""
    if interpreter_wanted(cuda_available):
        environ.setdefault("TRITON_INTERPRET", "1")


def triton_test_device(cuda_available: bool) -> str:
    """The one device a Triton test's tensors go to on this machine: "cuda" with a GPU, else "cpu" (interpreter)."""
    return "cuda" if cuda_available else "cpu"


def triton_device_params(cuda_available: bool) -> list:
    """pytest params for a `device` fixture: the interpreter case runs only without CUDA, the CUDA case only with it
    (marked `gpu`); each skipped one says why."""
    return [
        pytest.param(
            "cpu",
            marks=pytest.mark.skipif(
                cuda_available, reason="with CUDA present Triton compiles for the GPU, not the interpreter"
            ),
            id="interpreter",
        ),
        pytest.param(
            "cuda",
            marks=[pytest.mark.gpu, pytest.mark.skipif(not cuda_available, reason="needs a CUDA device")],
            id="cuda",
        ),
    ]


HAS_CUDA = torch.cuda.is_available()
set_interpreter(HAS_CUDA)
DEVICES = triton_device_params(HAS_CUDA)
