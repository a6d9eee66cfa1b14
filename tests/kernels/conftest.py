"""Fixtures for the kernel tests: Triton's interpreter on a machine without CUDA, and the `device` parameter.

Without CUDA, TRITON_INTERPRET=1 is set here, before any test imports `kernels.ops` (Triton reads it when the kernels
are decorated), so the Triton kernels run on CPU tensors, in numpy, about 4,000x slower than torch: keep shapes small.
"""

from __future__ import annotations

import os

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

DEVICES = [
    pytest.param(
        "cpu",
        marks=pytest.mark.skipif(HAS_CUDA, reason="with CUDA present Triton compiles for the GPU, not the interpreter"),
        id="interpreter",
    ),
    pytest.param(
        "cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")],
        id="cuda",
    ),
]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Where the Triton kernels run: "cuda" when a GPU is present, else "cpu" through the interpreter."""
    return request.param


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
