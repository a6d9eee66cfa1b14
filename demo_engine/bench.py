"""Benchmark: our engine next to its peers, in one run on this machine.

    python -m demo_engine.bench [--json] [--tokens N] [--runs N] [--skip-peers] [--skip-variants] [--threads N]
    python -m demo_engine.bench --cuda [--json]      # on a CUDA machine: the engine with Triton against eager

Each contender runs in a fresh process of its own (so its peak RSS and its OpenMP threads are its own), one after the
other, on the same token ids (SmolLM2's chat template around one question, rendered by our engine), greedy, past
end-of-text, on the same number of CPU threads (the engine's: `--threads`, default `Engine.load`'s):

- ours, all through the engine's scheduler thread (the serving path): decode tokens/s at batch 1 (time after the first
  token, best of `--runs`); aggregate tokens/s with 1, 4, 8 and 16 concurrent requests (end to end); prefill tokens/s
  of a 512-token prompt; peak RSS; and, in yet another process, the time from start to the first token; the same
  figures again (unless `--skip-variants`) for PyTorch's int4 kernel instead of the native ones
  (`ENGINE_NATIVE_CPU=off`, keys `torch_…`), and for what an AVX2-only machine runs, the native AVX2 build
  (`ENGINE_NATIVE_CPU=avx2`, keys `avx2_…`) against PyTorch's int4 kernel (keys `torch_avx2_…`), both with
  PyTorch's and oneDNN's kernels held to AVX2 (`ATEN_CPU_CAPABILITY=avx2`, `ONEDNN_MAX_CPU_ISA=AVX2`);
- `transformers` generate on the same GGUF (fp32, as it loads it), batch 1 and 8, decode timed apart from prefill (a
  streamer stamps each token), best of `--runs`;
- llama.cpp through `llama-cpp-python` when it is installed (`make bench-peers`): `Llama.generate` on the same ids,
  decode timed apart from prefill, best of `--runs`; also llama.cpp's own count of its decode time (C side only,
  without the Python around it).

Then the ratios. With --json the last line is one JSON object. `--cuda` prints instead the engine-level table of the
kernels (generation tokens/s with the Triton kernels and with their PyTorch references, on the GPU); it lives here, not
in `kernels.bench`, because the kernels know nothing about the engine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import subprocess
import sys
import time
from typing import Any

BENCH_QUESTION = "Tell me a long story about a robot who visits the World Artificial Intelligence Conference."
RUNS = 3  # decode runs per contender; the best one counts (the machine is shared, so single runs are noisy)
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile")

Figures = dict[str, Any]


# --- helpers --------------------------------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cpu_flags() -> str:
    """The vector extensions of this CPU that decide which kernels run (figures differ from machine to machine)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = set(re.search(r"^flags\s*:(.*)$", cpuinfo.read(), re.M).group(1).split())  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return "unknown"
    return " ".join(flag for flag in CPU_FLAGS if flag in flags)


def _decode_rate(stamps: list[float]) -> float:
    """Tokens per second after the first token, from the times each token arrived."""
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0


def prompt_ids(tokenizer: Any = None) -> tuple[list[int], list[int]]:
    """The chat prompt of the benchmark question and a 512-token prompt, as token ids (our tokenizer and template).
    Pass the engine's tokenizer where there is one: a second copy is 38 MB of the peak RSS measured."""
    from demo_engine.engine.chat_template import plan_prompt
    from demo_engine.engine.gguf_loader import default_gguf_path
    from demo_engine.engine.tokenizer import ChatTokenizer

    tokenizer = tokenizer or ChatTokenizer.from_gguf(default_gguf_path())
    chat = plan_prompt(tokenizer, [{"role": "user", "content": BENCH_QUESTION}], max_context=2048, max_new_tokens=512)
    long_prompt = (tokenizer.encode(BENCH_QUESTION + " ") * 64)[:512]
    return chat.token_ids, long_prompt


# --- the contenders, each run in a process of its own ---------------------------------------------------------------


def bench_ours(tokens: int, runs: int, threads: int | None, native_cpu: str | None = None) -> Figures:
    """Our figures through the scheduler thread: the serving path, with the engine's own thread settings."""
    from demo_engine.engine import Engine, SamplingParams

    def params(n: int) -> SamplingParams:
        return SamplingParams(greedy=True, repetition_penalty=1.0, max_new_tokens=n, ignore_eos=True)

    def run_concurrently(prompt: list[int], n: int, concurrency: int) -> tuple[list, float]:
        started = time.perf_counter()
        handles = [engine.submit(prompt, params(n), lambda event: None) for _ in range(concurrency)]
        finals = [handle.wait() for handle in handles]
        return finals, time.perf_counter() - started

    engine = Engine.load(max_batch=16, threads=threads, native_cpu=native_cpu)
    figures: Figures = {"backend": engine.backend, "load_s": engine.load_seconds, "threads": engine.config.threads}
    figures["rss_after_load_mb"] = _current_rss_mb()
    chat, long_prompt = prompt_ids(engine.tokenizer)
    engine.start()
    try:
        run_concurrently(chat, 8, 1)  # warm-up: first calls of the kernels
        rates = [run_concurrently(chat, tokens, 1)[0][0].stats.decode_tokens_per_s or 0.0 for _ in range(runs)]
        figures["decode_tok_s_batch1"] = max(rates)
        figures["decode_tok_s_batch1_runs"] = [round(rate, 1) for rate in rates]
        # Concurrency 1 is the baseline of the batching ratio: prefill, first token and decode, end to end.
        for concurrency in (1, 4, 8, 16):
            finals, elapsed = run_concurrently(chat, tokens, concurrency)
            figures[f"aggregate_tok_s_{concurrency}"] = sum(f.stats.generated_tokens for f in finals) / elapsed
        # A 512-token prompt (no chat turn, so no cached prefix): its time to first token is its prefill.
        ttfts = [run_concurrently(long_prompt, 1, 1)[0][0].stats.ttft_s for _ in range(2)]
        figures["prefill_tok_s_512"] = 512 / min(ttfts)
    finally:
        engine.stop()
    figures["peak_rss_mb"] = _peak_rss_mb()
    return figures


def bench_cold_start(threads: int | None) -> Figures:
    """Seconds from the start of a fresh process (imports included) to the first generated token."""
    started = time.perf_counter()
    from demo_engine.engine import Engine, SamplingParams

    engine = Engine.load(threads=threads)
    engine.start()
    plan = engine.render_chat([{"role": "user", "content": "Hello!"}], max_new_tokens=1)
    engine.generate(plan.token_ids, SamplingParams(greedy=True, max_new_tokens=1))
    first = time.perf_counter() - started
    engine.stop()
    return {"cold_start_to_first_token_s": first}


class _TokenClock:
    """A `transformers` streamer that stamps each generated token (the first `put` is the prompt)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if self._prompt_seen:
            self.stamps.append(time.perf_counter())
        self._prompt_seen = True

    def end(self) -> None:
        pass


def bench_transformers(tokens: int, runs: int, threads: int) -> Figures:
    """transformers generate on the same GGUF and token ids, fp32 as it loads it; decode apart from prefill."""
    import torch
    from transformers import AutoModelForCausalLM

    from demo_engine.engine.gguf_loader import default_gguf_path

    torch.set_num_threads(threads)
    path = default_gguf_path()
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32
    ).eval()
    chat, _long = prompt_ids()
    figures: Figures = {"threads": threads}
    for batch in (1, 8):
        ids = torch.tensor([chat] * batch)
        options = dict(do_sample=False, min_new_tokens=tokens, max_new_tokens=tokens, pad_token_id=2)
        rates, prefills = [], []
        with torch.inference_mode():
            model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=2, pad_token_id=2)
            for _ in range(runs if batch == 1 else 1):  # batch 8 takes long: one run
                clock = _TokenClock()
                started = time.perf_counter()
                model.generate(ids, attention_mask=torch.ones_like(ids), streamer=clock, **options)
                rates.append(_decode_rate(clock.stamps) * batch)
                prefills.append(clock.stamps[0] - started)
        figures[f"decode_tok_s_batch{batch}"] = max(rates)
        if batch == 1:
            figures["decode_tok_s_batch1_runs"] = [round(rate, 1) for rate in rates]
            figures["time_to_first_token_s"] = min(prefills)
    figures["peak_rss_mb"] = _peak_rss_mb()
    return figures


def bench_llama_cpp(tokens: int, runs: int, threads: int) -> Figures:
    """llama.cpp through llama-cpp-python on the same GGUF and token ids, greedy, past end-of-text (`generate` yields
    tokens until told to stop), decode apart from prefill."""
    import llama_cpp
    from llama_cpp import Llama

    from demo_engine.engine.gguf_loader import default_gguf_path

    llm = Llama(
        model_path=default_gguf_path(), n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads,
        verbose=False,
    )  # fmt: skip
    chat, long_prompt = prompt_ids()

    def run(prompt: list[int], n: int) -> tuple[float, list[float]]:
        llm.reset()  # no reuse of the previous run's cache: every run prefills its prompt
        started = time.perf_counter()
        stamps: list[float] = []
        for _token in llm.generate(prompt, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
            stamps.append(time.perf_counter())
            if len(stamps) == n:
                break
        return started, stamps

    run(chat, 8)  # warm-up
    rates, c_side = [], []
    for _ in range(runs):
        llama_cpp.llama_perf_context_reset(llm.ctx)
        _started, stamps = run(chat, tokens)
        rates.append(_decode_rate(stamps))
        perf = llama_cpp.llama_perf_context(llm.ctx)
        c_side.append(perf.n_eval / (perf.t_eval_ms / 1000) if perf.t_eval_ms > 0 else 0.0)
    prefill = min(stamps[0] - started for started, stamps in (run(long_prompt, 1) for _ in range(2)))
    return {
        "threads": threads,
        "version": llama_cpp.__version__,
        "decode_tok_s_batch1": max(rates),
        "decode_tok_s_batch1_runs": [round(rate, 1) for rate in rates],
        "decode_tok_s_batch1_c_side": max(c_side),
        "prefill_tok_s_512": 512 / prefill,
        "peak_rss_mb": _peak_rss_mb(),
    }


CONTENDERS = {
    "ours": lambda args: bench_ours(args.tokens, args.runs, args.threads),
    "ours_torch": lambda args: bench_ours(args.tokens, args.runs, args.threads, native_cpu="off"),
    "ours_avx2": lambda args: bench_ours(args.tokens, args.runs, args.threads, native_cpu="avx2"),
    "ours_torch_avx2": lambda args: bench_ours(args.tokens, args.runs, args.threads, native_cpu="off"),
    "cold_start": lambda args: bench_cold_start(args.threads),
    "transformers": lambda args: bench_transformers(args.tokens, args.runs, args.threads),
    "llama_cpp": lambda args: bench_llama_cpp(args.tokens, args.runs, args.threads),
}


# What an AVX2-only machine runs: PyTorch's ATen kernels and oneDNN (the int8 head) held to AVX2.
AVX2_ONLY_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
CONTENDER_ENV = {"ours_avx2": AVX2_ONLY_ENV, "ours_torch_avx2": AVX2_ONLY_ENV}


def _in_subprocess(name: str, args: argparse.Namespace) -> Figures:
    """Run one contender in a fresh Python process; its figures, or {"error": …} if it failed."""
    command = [sys.executable, "-m", "demo_engine.bench", "--only", name, "--tokens", str(args.tokens)]
    command += ["--runs", str(args.runs), "--threads", str(args.threads)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **CONTENDER_ENV.get(name, {}))
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1][:300]}
    return json.loads(lines[-1])


# --- the whole run ---------------------------------------------------------------------------------------------------


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def summarize(
    ours: Figures, cold: Figures, transformers: Figures, llama: Figures, variants: dict[str, Figures] | None = None
) -> Figures:
    """One flat JSON object: ours, our variants and the peers (prefixed), the ratios."""
    renamed = {"threads": "engine_threads", "error": "ours_error"}
    summary: Figures = {renamed.get(key, key): value for key, value in ours.items()}
    summary.update(cold)
    variants = variants or {}
    for prefix, figures in variants.items():
        summary.update({f"{prefix}_{key}": value for key, value in figures.items()})
    summary.update({f"transformers_{key}": value for key, value in transformers.items()})
    summary.update({f"llama_cpp_{key}": value for key, value in llama.items()})
    batch1 = ours.get("decode_tok_s_batch1")
    summary["ratio_batch1_vs_llama_cpp"] = _ratio(batch1, llama.get("decode_tok_s_batch1"))
    summary["ratio_batch1_vs_llama_cpp_c_side"] = _ratio(batch1, llama.get("decode_tok_s_batch1_c_side"))
    summary["ratio_batch1_vs_transformers"] = _ratio(batch1, transformers.get("decode_tok_s_batch1"))
    summary["ratio_8_concurrent_vs_transformers_batch8"] = _ratio(
        ours.get("aggregate_tok_s_8"), transformers.get("decode_tok_s_batch8")
    )
    summary["ratio_16_concurrent_vs_transformers_batch8"] = _ratio(
        ours.get("aggregate_tok_s_16"), transformers.get("decode_tok_s_batch8")
    )
    summary["ratio_16_concurrent_vs_own_batch1"] = _ratio(ours.get("aggregate_tok_s_16"), ours.get("aggregate_tok_s_1"))
    torch_int4 = variants.get("torch", {})
    if torch_int4.get("decode_tok_s_batch1"):
        summary["ratio_batch1_vs_torch_int4"] = _ratio(batch1, torch_int4["decode_tok_s_batch1"])
        summary["ratio_16_concurrent_vs_torch_int4"] = _ratio(
            ours.get("aggregate_tok_s_16"), torch_int4.get("aggregate_tok_s_16")
        )
    avx2, torch_avx2 = variants.get("avx2", {}), variants.get("torch_avx2", {})
    if avx2.get("decode_tok_s_batch1") and torch_avx2.get("decode_tok_s_batch1"):
        summary["avx2_ratio_batch1_vs_torch_avx2"] = _ratio(
            avx2["decode_tok_s_batch1"], torch_avx2["decode_tok_s_batch1"]
        )
        summary["avx2_ratio_16_concurrent_vs_torch_avx2"] = _ratio(
            avx2.get("aggregate_tok_s_16"), torch_avx2.get("aggregate_tok_s_16")
        )
    summary["cpu_cores"] = os.cpu_count() or 1
    summary["cpu_flags"] = _cpu_flags()
    return summary


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


# --- the engine with Triton against eager, on a GPU (moved here from kernels.bench) ---------------------------------


def cuda_engine_rows(batches: tuple[int, ...] = (1, 32), new_tokens: int = 64) -> list[Figures] | Figures:
    """Engine generation tokens/s (prefill included, greedy) with the Triton kernels and with their references
    (PyTorch eager) on the GPU, per batch size; skipped with the reason if CUDA or the engine is not there."""
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    try:
        from demo_engine.engine import Engine, SamplingParams
        from kernels import dispatch

        engine = Engine.load(device="cuda", max_batch=max(batches))
        engine.start()
        try:
            prompt = engine.render_chat(
                [{"role": "user", "content": "Tell me about the World Artificial Intelligence Conference."}],
                max_new_tokens=new_tokens,
            ).token_ids
            params = SamplingParams(greedy=True, max_new_tokens=new_tokens)
            rows: list[Figures] = []
            for batch in batches:
                row: Figures = {"batch": batch, "backend_label": engine.backend}
                for backend in ("triton", "torch"):
                    with dispatch.use_backend(backend):
                        for _round in ("warm-up", "measured"):  # warm-up: compilation, CUDA graphs
                            torch.cuda.synchronize()
                            start = time.perf_counter()
                            handles = [engine.submit(prompt, params, lambda event: None) for _ in range(batch)]
                            finals = [handle.wait(timeout=300) for handle in handles]
                            torch.cuda.synchronize()
                            elapsed = time.perf_counter() - start
                        generated = sum(f.stats.generated_tokens for f in finals if f is not None and f.stats)
                        row[f"{backend}_tok_s"] = generated / elapsed
                row["speedup"] = row["triton_tok_s"] / row["torch_tok_s"]
                rows.append(row)
            return rows
        finally:
            engine.stop()
    except Exception as error:
        return {"skipped": f"{type(error).__name__}: {error}"[:300]}


# --- command line ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from demo_engine.engine.engine import DEFAULT_THREADS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    parser.add_argument("--tokens", type=int, default=64, help="tokens generated per request")
    parser.add_argument("--runs", type=int, default=RUNS, help="decode runs per contender (the best counts)")
    parser.add_argument("--skip-peers", action="store_true", help="only our own figures")
    parser.add_argument(
        "--skip-variants", action="store_true", help="not PyTorch's int4 kernel nor the AVX2-only figures"
    )
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="CPU threads of every contender")
    parser.add_argument("--cuda", action="store_true", help="the engine on the GPU, Triton kernels against eager")
    parser.add_argument("--only", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)  # one contender, in this process
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.only:
        print(json.dumps(_rounded(CONTENDERS[args.only](args))))
        return 0
    if args.cuda:
        rows = cuda_engine_rows()
        print("engine on CUDA:", rows)
        if args.json:
            print(json.dumps(_rounded(rows)))
        return 0

    load_before = os.getloadavg()
    ours = _in_subprocess("ours", args)
    cold = _in_subprocess("cold_start", args)
    variants = {}
    if not args.skip_variants:
        for prefix in ("torch", "avx2", "torch_avx2"):
            variants[prefix] = _in_subprocess(f"ours_{prefix}", args)
    transformers: Figures = {}
    llama: Figures = {}
    if not args.skip_peers:
        transformers = _in_subprocess("transformers", args)
        if importlib.util.find_spec("llama_cpp") is not None:
            llama = _in_subprocess("llama_cpp", args)
        else:
            llama = {"skipped": "llama-cpp-python is not installed (make bench-peers)"}
    summary = summarize(ours, cold, transformers, llama, variants)
    summary["tokens"] = args.tokens
    summary["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    for key, value in summary.items():
        shown = f"{value:10.2f}" if isinstance(value, float) else str(value)
        print(f"{key:45s} {shown}")
    if args.json:
        print(json.dumps(_rounded(summary)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
