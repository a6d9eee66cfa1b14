"""Fixtures for the kernel tests: Triton's interpreter on a machine without CUDA, and the `device` parameter.

`tests.triton_devices` sets TRITON_INTERPRET=1 without CUDA, before any test imports `kernels.ops` (Triton reads it
when the kernels are decorated), so the Triton kernels run on CPU tensors, in numpy, about 4,000x slower than torch:
keep shapes small. With CUDA the same tests run on CUDA tensors and the interpreter cases are skipped.
"""

from __future__ import annotations

import pytest
import torch

from tests.triton_devices import DEVICES


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Where the Triton kernels run: "cuda" when a GPU is present, else "cpu" through the interpreter."""
    return request.param


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
