"""The engine facade: load SmolLM2 once, render chats, submit requests to the continuous-batching scheduler.

This is the only module the chat (Celery worker) needs. Imports no Django, and no PyTorch on the CPU's native path
(the default where its kernels build): PyTorch is imported only when a torch model is loaded.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from demo_engine.engine import native as native_code
from demo_engine.engine.chat_template import PromptPlan, plan_prompt
from demo_engine.engine.gguf_loader import GGUFFile, default_gguf_path
from demo_engine.engine.native_model import NativeModel
from demo_engine.engine.sampler import SamplingParams
from demo_engine.engine.scheduler import EngineEvent, RequestHandle, RequestStats, Scheduler
from demo_engine.engine.tokenizer import ChatTokenizer

if TYPE_CHECKING:
    from demo_engine.engine.model import LlamaModel

DEFAULT_MAX_CONTEXT = 2048  # of the model's 8192: a booth chat never needs more, and the cache stays small


@dataclass(frozen=True)
class EngineConfig:
    """How the engine was loaded."""

    gguf_path: str
    mode: str  # "fp32", "int4" (CPU fast path), "q4_1" (CUDA) or "bf16" (the GPU benchmark's dense baseline)
    device: str
    max_batch: int
    max_context: int
    threads: int = 2  # CPU threads of the scheduler thread (see Scheduler)


DEFAULT_THREADS = min(4, os.cpu_count() or 1)


def _return_freed_memory() -> None:
    """Hand the loader's freed transients back to the OS (glibc keeps them in its heap otherwise: about 200 MB), and
    keep the loaded objects out of the garbage collector's way."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    # What is alive now (the modules, the tokenizer's objects) stays alive: leave it out of every later
    # collection, which otherwise walks all of it (4% of the scheduler thread's time at 16 concurrent replies).
    gc.freeze()
    atexit.register(gc.unfreeze)  # and let the interpreter's last collections see it again (extension types check)


class Engine:
    """SmolLM2-135M-Instruct served with continuous batching. See the package docstring for the API."""

    def __init__(self, config: EngineConfig, model: LlamaModel | NativeModel, tokenizer: ChatTokenizer) -> None:
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.scheduler = Scheduler(
            model, tokenizer, max_batch=config.max_batch, max_context=config.max_context, threads=config.threads
        )
        self.load_seconds = 0.0

    @classmethod
    def load(
        cls,
        *,
        gguf_path: str | None = None,
        fp32: bool = False,
        device: str = "cpu",
        max_batch: int = 16,
        max_context: int = DEFAULT_MAX_CONTEXT,
        threads: int | None = None,
        native_cpu: str | None = None,
        dense_bf16: bool = False,
    ) -> Engine:
        """Read the GGUF and build the model and tokenizer (a progress bar shows on a terminal).

        The engine's parallel work runs in its scheduler thread, on `threads` CPU threads (default: the cores, at
        most 4). The calling thread is set to one thread, and left so: once two threads of a process have run
        OpenMP teams, libgomp has more threads than a small machine has cores and stops spinning between parallel
        regions, which made every decode step slower than on one thread (see Scheduler). `generate` without
        `start()` runs in the caller's thread, on whatever it is set to.

        `native_cpu` ("auto", "off", "avx2"; default `ENGINE_NATIVE_CPU`, else "auto"): the native int4 x int16
        kernels of `native.py` where the CPU and a C compiler allow (`native_model.NativeModel`, without PyTorch);
        "off" runs PyTorch's int4 kernel (`model.LlamaModel`, like the fp32 and CUDA modes).

        `dense_bf16`: every weight dequantized once to bf16 and multiplied by PyTorch (cuBLAS on a GPU), attention by
        SDPA: the GPU benchmark's baseline for the 4-bit Triton path, not a serving mode.
        """
        started = time.perf_counter()
        threads = threads or DEFAULT_THREADS
        path = gguf_path or default_gguf_path()
        mode = "fp32" if fp32 else ("q4_1" if device.startswith("cuda") else "int4")
        if dense_bf16 and not fp32:
            mode = "bf16"
        # The native code (built or loaded first; `threads`: its pool, the caller included) where it runs.
        native = native_code.load(threads, native_cpu) if mode == "int4" and device.split(":")[0] == "cpu" else None
        if native is None:
            import torch

            torch.set_num_threads(1)
            if device.startswith("cuda") and not torch.cuda.is_available():
                raise RuntimeError("device='cuda' asked for, but no CUDA device is available")
        gguf_file = GGUFFile(path)
        try:
            config_context = int(gguf_file.metadata("llama.context_length", 8192))  # type: ignore[arg-type]
            tokenizer = ChatTokenizer.from_gguf(path, gguf_file)
            if native is not None:
                model: LlamaModel | NativeModel = NativeModel.from_gguf(gguf_file, native)
            else:
                from demo_engine.engine.model import LlamaModel

                model = LlamaModel.from_gguf(gguf_file, mode, device)
        finally:
            gguf_file.close()
        _return_freed_memory()
        config = EngineConfig(path, mode, device, max_batch, min(max_context, config_context), threads)
        engine = cls(config, model, tokenizer)
        engine.load_seconds = time.perf_counter() - started
        return engine

    @property
    def backend(self) -> str:
        """Which kernels run, e.g. "CPU · int4 bf16"."""
        return self.model.kernel_label

    def start(self) -> None:
        """Start the background scheduler thread."""
        self.scheduler.start()

    def stop(self) -> None:
        """Stop the scheduler thread; unfinished requests end "cancelled"."""
        self.scheduler.stop()

    def render_chat(self, messages: list[dict[str, str]], *, max_new_tokens: int) -> PromptPlan:
        """The prompt for a conversation, with room for `max_new_tokens`; older turns dropped if needed."""
        return plan_prompt(self.tokenizer, messages, max_context=self.config.max_context, max_new_tokens=max_new_tokens)

    def submit(
        self, prompt_token_ids: list[int], params: SamplingParams, on_event: Callable[[EngineEvent], None]
    ) -> RequestHandle:
        """Queue a request (thread-safe). `on_event` runs on the scheduler thread: keep it cheap."""
        return self.scheduler.submit(prompt_token_ids, params, on_event)

    def generate(
        self,
        prompt: list[dict[str, str]] | list[int],
        params: SamplingParams | None = None,
        on_event: Callable[[EngineEvent], None] | None = None,
    ) -> tuple[str, RequestStats]:
        """Run one request to the end and return (reply text, stats).

        `prompt` is a list of chat messages or of token ids. Works with or without `start()`: without the
        thread, the scheduler is stepped in the calling thread.
        """
        params = params or SamplingParams()
        if prompt and isinstance(prompt[0], dict):
            token_ids = self.render_chat(prompt, max_new_tokens=params.max_new_tokens).token_ids  # type: ignore[arg-type]
        else:
            token_ids = list(prompt)  # type: ignore[arg-type]
        pieces: list[str] = []

        def collect(event: EngineEvent) -> None:
            pieces.append(event.text)
            if on_event is not None:
                on_event(event)

        handle = self.submit(token_ids, params, collect)
        if not self.scheduler.running:
            while not handle.done:
                self.scheduler.step()
        final = handle.wait()
        assert final is not None and final.stats is not None
        if final.finish_reason == "error":
            raise RuntimeError(final.error)
        return "".join(pieces), final.stats

    def live_figures(self) -> dict[str, float | int]:
        """{"tokens_per_s": over the last second, "in_flight": running requests, "queued": waiting ones}."""
        return self.scheduler.live_figures()
