"""The device choice of the Triton tests (`tests.triton_devices`), for both kinds of machine. A GPU machine is
simulated by passing cuda_available=True: these functions only decide where tensors go and whether the interpreter
is switched on; nothing here touches a device."""

import pytest

from tests import triton_devices


def _runs(params: list) -> list[str]:
    """The ids of the params that pytest would run (no skipif mark whose condition holds)."""
    return [p.id for p in params if not any(m.name == "skipif" and m.args[0] for m in p.marks)]


@pytest.mark.parametrize(("cuda_available", "runs"), [(False, ["interpreter"]), (True, ["cuda"])])
def test_triton_tests_run_on_cpu_tensors_only_without_cuda(cuda_available, runs):
    """Without CUDA only the interpreter case runs (CPU tensors); with CUDA only the CUDA case (CUDA tensors)."""
    assert _runs(triton_devices.triton_device_params(cuda_available)) == runs
    assert triton_devices.triton_test_device(cuda_available) == {"interpreter": "cpu", "cuda": "cuda"}[runs[0]]


def test_the_cuda_case_is_marked_gpu():
    """The CUDA case carries the `gpu` marker, so `pytest -m gpu` (the GPU check) selects it."""
    cuda = [p for p in triton_devices.triton_device_params(True) if p.id == "cuda"][0]
    assert "gpu" in [m.name for m in cuda.marks]


@pytest.mark.parametrize(
    ("cuda_available", "before", "after"),
    [
        (False, {}, {"TRITON_INTERPRET": "1"}),
        (True, {}, {}),
        (False, {"TRITON_INTERPRET": "0"}, {"TRITON_INTERPRET": "0"}),
    ],
)
def test_the_interpreter_is_switched_on_only_without_cuda(cuda_available, before, after):
    """TRITON_INTERPRET=1 is set without CUDA, never with it, and an explicit setting is left alone."""
    environ = dict(before)
    triton_devices.set_interpreter(cuda_available, environ)
    assert environ == after
