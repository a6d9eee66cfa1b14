"""Fixtures shared by every test package."""

import os

import pytest
import torch

# Without CUDA, Triton kernels run in Triton's interpreter. Set it before anything imports Triton: transformers (in
# the engine's reference tests) imports torch's compiler stack, which imports Triton and caches its settings, and a
# kernel decorated after that is not interpretable ("Cannot call @triton.jit'd outside of the scope of a kernel").
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from tests.stack import LiveStack


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory):
    """The real site (ASGI server + Celery worker + Redis), started once per test session."""
    stack = LiveStack(tmp_dir=tmp_path_factory.mktemp("live-stack")).start()
    yield stack
    stack.stop()


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """In-process tests render templates without running collectstatic first (no hashed manifest)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
