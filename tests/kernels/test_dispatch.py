import pytest
import torch

from kernels import dispatch, reference


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("KERNELS_FORCE_REFERENCE", raising=False)
    monkeypatch.delenv("KERNELS_FORCE_TRITON", raising=False)


def test_cpu_tensors_get_the_reference():
    """With no override, a CPU tensor runs the PyTorch reference."""
    assert dispatch.backend_for(torch.zeros(1)) == "torch"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_get_triton():
    """With no override, a CUDA tensor runs Triton."""
    assert dispatch.backend_for(torch.zeros(1, device="cuda")) == "triton"


def test_environment_forces_either_backend(monkeypatch):
    """KERNELS_FORCE_REFERENCE=1 forces the reference, KERNELS_FORCE_TRITON=1 forces Triton; the reference wins both."""
    monkeypatch.setenv("KERNELS_FORCE_TRITON", "1")
    assert dispatch.backend_for(torch.zeros(1)) == "triton"
    monkeypatch.setenv("KERNELS_FORCE_REFERENCE", "1")
    assert dispatch.backend_for(torch.zeros(1)) == "torch"


def test_use_backend_nests_restores_and_rejects_unknown_names(monkeypatch):
    """use_backend overrides inside its block only (even over the environment) and refuses a misspelt backend."""
    monkeypatch.setenv("KERNELS_FORCE_REFERENCE", "1")
    x = torch.zeros(1)
    with dispatch.use_backend("triton"):
        assert dispatch.backend_for(x) == "triton"
        with dispatch.use_backend("torch"):
            assert dispatch.backend_for(x) == "torch"
        assert dispatch.backend_for(x) == "triton"
    assert dispatch.backend_for(x) == "torch"
    with pytest.raises(ValueError), dispatch.use_backend("cuda"):
        pass


def test_forced_triton_never_calls_the_reference(monkeypatch, device):
    """Under use_backend("triton") every dispatched kernel runs Triton (the interpreter on CPU tensors without CUDA,
    the GPU on CUDA tensors) and agrees with the reference, which is never called."""
    x = torch.randn(2, 3, 9 * 64)
    weight = torch.rand(9 * 64) + 0.5
    q, k = torch.randn(2, 3, 9, 64), torch.randn(2, 3, 3, 64)
    cos, sin = torch.rand(2, 3, 32), torch.rand(2, 3, 32)
    q_new, k_cache, v_cache = torch.randn(2, 9, 64), torch.randn(2, 3, 16, 64), torch.randn(2, 3, 16, 64)
    slots, seq_lens = torch.tensor([1, 0]), torch.tensor([16, 3], dtype=torch.int32)
    blocks = torch.randint(0, 256, (8, 40), dtype=torch.uint8)
    blocks.view(8, 2, 20)[..., 0:4] = torch.tensor([0.01, -0.05], dtype=torch.float16).view(torch.uint8)
    logits = torch.randn(2, 50)
    sampling = (torch.tensor([0.0, 1.0]), torch.tensor([0, 5]), torch.tensor([1.0, 0.9]), torch.tensor([0.5, 0.5]))
    x, weight, q, k, cos, sin, q_new, k_cache, v_cache, slots, seq_lens, blocks, logits = (
        t.to(device) for t in (x, weight, q, k, cos, sin, q_new, k_cache, v_cache, slots, seq_lens, blocks, logits)
    )
    sampling = tuple(t.to(device) for t in sampling)

    want = {
        "rms_norm": reference.rms_norm(x, weight, 1e-5, x),
        "decode_attention": reference.decode_attention(q_new, k_cache, v_cache, slots, seq_lens, 0.125),
        "swiglu": reference.swiglu(x, x),
        "q4_1_matmul": reference.q4_1_matmul(x[0, :, :64], blocks, 8, 64),
        "sample": reference.sample(logits, *sampling),
    }
    want_q, want_k = q.clone(), k.clone()
    reference.apply_rotary(want_q, want_k, cos, sin)
    for name in ("rms_norm", "apply_rotary", "decode_attention", "swiglu", "q4_1_matmul", "sample"):
        monkeypatch.setattr(reference, name, lambda *a, name=name, **kw: pytest.fail(f"reference {name} was called"))

    with dispatch.use_backend("triton"):
        got_out, got_residual = dispatch.rms_norm(x, weight, 1e-5, x)
        dispatch.apply_rotary(q, k, cos, sin)
        got_attention = dispatch.decode_attention(q_new, k_cache, v_cache, slots, seq_lens, 0.125)
        got_swiglu = dispatch.swiglu(x, x)
        got_matmul = dispatch.q4_1_matmul(x[0, :, :64], blocks, 8, 64)
        got_tokens = dispatch.sample(logits, *sampling)

    torch.testing.assert_close(got_out, want["rms_norm"][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_residual, want["rms_norm"][1])
    torch.testing.assert_close((q, k), (want_q, want_k), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_attention, want["decode_attention"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_swiglu, want["swiglu"], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got_matmul, want["q4_1_matmul"], atol=1e-4, rtol=1e-4)
    assert torch.equal(got_tokens, want["sample"])


def test_dispatch_import_does_not_load_triton():
    """Importing kernels.dispatch (what the engine does on every machine) does not import Triton."""
    import subprocess
    import sys

    code = "import sys, kernels.dispatch; print('triton' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("fake_cuda", "interpret", "expected"),
    [
        (False, None, "ran"),  # a CPU machine: dispatch switches the interpreter on by itself
        (True, None, "refused"),  # a GPU machine: no interpreter, so CPU tensors are refused, not launched
        (False, "0", "refused"),  # the interpreter explicitly off
    ],
)
def test_triton_on_cpu_tensors_runs_only_in_the_interpreter(fake_cuda, interpret, expected):
    """Forcing Triton on CPU tensors runs them in the interpreter where there is no GPU; where a GPU is present (here
    faked: torch.cuda.is_available() returns True, nothing touches a device) it stops with a clear error instead of
    launching a GPU kernel on host pointers."""
    import os
    import subprocess
    import sys

    code = (
        "import torch\n"
        f"torch.cuda.is_available = lambda: {fake_cuda}\n"
        "from kernels import dispatch\n"
        "x = torch.randn(3, 40)\n"
        "try:\n"
        "    y = dispatch.swiglu(x, x)\n"
        "except RuntimeError as error:\n"
        "    print('refused:', error)\n"
        "else:\n"
        "    torch.testing.assert_close(y, torch.nn.functional.silu(x) * x)\n"
        "    print('ran')\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env["KERNELS_FORCE_TRITON"] = "1"
    if interpret is not None:
        env["TRITON_INTERPRET"] = interpret
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split(":")[0].strip() == expected
    if expected == "refused":
        assert "interpreter off" in result.stdout
