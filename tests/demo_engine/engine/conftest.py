"""Fixtures for the engine tests: the engines (fp32 reference path and the fast path), loaded once per session,
`transformers`' reading of the same GGUF as the reference (about 15-40 s to load, so once per session), and
`triton_device`, where the tests that run the Triton kernels put their tensors (see `tests.triton_devices`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.triton_devices import DEVICES

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private var directory, so the tokenizer cache is built from the GGUF in the session."""
    path = tmp_path_factory.mktemp("var")
    previous = os.environ.get("SHOWCASE_VAR_DIR")
    os.environ["SHOWCASE_VAR_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("SHOWCASE_VAR_DIR", None)
    else:
        os.environ["SHOWCASE_VAR_DIR"] = previous


@pytest.fixture(scope="session")
def gguf_path() -> str:
    from demo_engine.engine.gguf_loader import default_gguf_path

    return default_gguf_path()


@pytest.fixture(scope="session")
def fp32_engine(var_dir: Path):
    """The exact fp32 path, 8 slots, scheduler stepped inline (no thread) unless a test starts it."""
    from demo_engine.engine import Engine

    return Engine.load(fp32=True, max_batch=8, max_context=1024)


@pytest.fixture(scope="session")
def fast_engine(var_dir: Path):
    """The default CPU fast path (the native kernels where they build)."""
    from demo_engine.engine import Engine

    return Engine.load(max_batch=16, max_context=1024)


@pytest.fixture(scope="session")
def torch_int4_engine(var_dir: Path):
    """The CPU fast path without the native kernels: PyTorch's int4 kernel, what runs where they cannot build."""
    from demo_engine.engine import Engine

    return Engine.load(max_batch=16, max_context=1024, native_cpu="off")


@pytest.fixture(scope="session")
def reference_model(gguf_path: str):
    """transformers' fp32 model from the same GGUF."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path), dtype=torch.float32
    )
    model.eval()
    return model


@pytest.fixture(scope="session")
def reference_tokenizer(gguf_path: str):
    """transformers' tokenizer from the same GGUF."""
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path))


@pytest.fixture(params=DEVICES)
def triton_device(request: pytest.FixtureRequest) -> str:
    """ "cpu" (Triton's interpreter) without CUDA, "cuda" with it: never Triton on CPU tensors on a GPU machine."""
    return request.param
