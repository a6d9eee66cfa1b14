"""Benchmark: our engine next to its peers, in one run on this machine.

    python -m demo_engine.bench [--json] [--tokens N] [--runs N] [--skip-peers] [--skip-variants] [--threads N]
    python -m demo_engine.bench --cuda [--json] [--jsonl PATH]   # on a CUDA machine: Triton against bf16 PyTorch

Each contender runs in a fresh process of its own (so its peak RSS and its OpenMP threads are its own), one after the
other, on the same token ids (SmolLM2's chat template around one question, rendered by our engine), greedy, past
end-of-text, on the same number of CPU threads (the engine's: `--threads`, default `Engine.load`'s):

- ours, all through the engine's scheduler thread (the serving path): decode tokens/s at batch 1 (time after the first
  token, best of `--runs`); aggregate tokens/s with 1, 4, 8 and 16 concurrent requests (end to end, best of `--runs`
  rounds of the four levels in turn, with the median round's 16-over-1 ratio beside the bests'); prefill tokens/s
  of a 512-token prompt; how long a 1,536-token prompt that arrives while a reply streams holds that reply's next
  token up, and its own time to first token; peak RSS; and, in yet another process, the time from start to the first
  token; the same figures again (unless `--skip-variants`) for PyTorch's int4 kernel instead of the native ones
  (`ENGINE_NATIVE_CPU=off`, keys `torch_…`), and for what an AVX2-only machine runs, the native AVX2 build
  (`ENGINE_NATIVE_CPU=avx2`, keys `avx2_…`) against PyTorch's int4 kernel (keys `torch_avx2_…`), both with
  PyTorch's and oneDNN's kernels held to AVX2 (`ATEN_CPU_CAPABILITY=avx2`, `ONEDNN_MAX_CPU_ISA=AVX2`);
- `transformers` generate on the same GGUF (fp32, as it loads it), batch 1 and 8, decode timed apart from prefill (a
  streamer stamps each token), each best of `--runs`;
- llama.cpp through `llama-cpp-python` when it is installed (`make bench-peers`): `Llama.generate` on the same ids,
  decode timed apart from prefill, best of `--runs`; also llama.cpp's own count of its decode time (C side only,
  without the Python around it); then ours and llama.cpp head to head at batch 1, loaded side by side and timed
  alternately, the order swapped every round (`run_duel`), so that the ratio compares engines, not minutes.

Then the ratios. With --json the last line is one JSON object. `--cuda` prints instead the engine on the GPU (see
`cuda_engine_rows`): the fast path (Q4_1 blocks, Triton kernels, CUDA graphs) against the fair baseline, the same
engine with dense bf16 weights and PyTorch's own ops (cuBLAS, SDPA), in the same run, and whether the GPU targets
hold; `--jsonl PATH` appends each row as soon as it is measured. Its exit status: 0 every row ran, 1 a row failed,
2 no CUDA device (a missed target is reported, not an exit status). It lives here, not in `kernels.bench`, because
the kernels know nothing about the engine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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


class OursSession:
    """Our engine loaded and started, as the serving path runs it: every request through the scheduler thread."""

    def __init__(self, threads: int | None, native_cpu: str | None = None) -> None:
        from demo_engine.engine import Engine

        self.engine = Engine.load(max_batch=16, threads=threads, native_cpu=native_cpu)
        self.rss_after_load_mb = _current_rss_mb()
        self.chat, self.long_prompt = prompt_ids(self.engine.tokenizer)
        self.engine.start()
        self.run(self.chat, 8, 1)  # warm-up: first calls of the kernels

    def run(self, prompt: list[int], n: int, concurrency: int) -> tuple[list, float]:
        """`concurrency` requests of `n` tokens each, greedy, past end-of-text: their final events and the time."""
        from demo_engine.engine import SamplingParams

        params = SamplingParams(greedy=True, repetition_penalty=1.0, max_new_tokens=n, ignore_eos=True)
        started = time.perf_counter()
        handles = [self.engine.submit(prompt, params, lambda event: None) for _ in range(concurrency)]
        finals = [handle.wait() for handle in handles]
        return finals, time.perf_counter() - started

    def stall(self, prompt_tokens: int = 1536) -> tuple[float, float]:
        """A reply streams; after its 10th token a prompt of `prompt_tokens` tokens arrives. Returns (the reply's
        longest wait between two tokens, the long prompt's time to first token), in seconds: how long one visitor's
        prefill holds up the others' replies."""
        from demo_engine.engine import SamplingParams

        stamps: list[float] = []
        params = SamplingParams(greedy=True, repetition_penalty=1.0, max_new_tokens=120, ignore_eos=True)
        streaming = self.engine.submit(self.chat, params, lambda event: stamps.append(time.perf_counter()))
        while len(stamps) < 10 and not streaming.done:
            time.sleep(0.002)
        long_prompt = (self.long_prompt * (prompt_tokens // len(self.long_prompt) + 1))[:prompt_tokens]
        final = self.engine.submit(long_prompt, SamplingParams(greedy=True, max_new_tokens=1), lambda e: None).wait()
        streaming.wait()
        return max(b - a for a, b in zip(stamps, stamps[1:], strict=False)), final.stats.ttft_s or 0.0

    def decode_rate(self, tokens: int) -> float:
        """One chat request's decode tokens/s (after its first token)."""
        return self.run(self.chat, tokens, 1)[0][0].stats.decode_tokens_per_s or 0.0

    def close(self) -> None:
        self.engine.stop()


def bench_ours(tokens: int, runs: int, threads: int | None, native_cpu: str | None = None) -> Figures:
    """Our figures through the scheduler thread: the serving path, with the engine's own thread settings."""
    session = OursSession(threads, native_cpu)
    engine = session.engine
    figures: Figures = {"backend": engine.backend, "load_s": engine.load_seconds, "threads": engine.config.threads}
    figures["rss_after_load_mb"] = session.rss_after_load_mb
    try:
        rates = [session.decode_rate(tokens) for _ in range(runs)]
        figures["decode_tok_s_batch1"] = max(rates)
        figures["decode_tok_s_batch1_runs"] = [round(rate, 1) for rate in rates]

        # Concurrency 1 is the baseline of the batching ratio: prefill, first token and decode, end to end.
        def aggregate(concurrency: int) -> float:
            finals, elapsed = session.run(session.chat, tokens, concurrency)
            return sum(f.stats.generated_tokens for f in finals) / elapsed

        figures.update(aggregate_rounds(aggregate, runs))
        # A 512-token prompt (no chat turn, so no cached prefix): its time to first token is its prefill.
        ttfts = [session.run(session.long_prompt, 1, 1)[0][0].stats.ttft_s for _ in range(2)]
        figures["prefill_tok_s_512"] = 512 / min(ttfts)
        # A 1,536-token prompt arriving while a reply streams: the reply's longest wait for a token, and the prompt's
        # own first token (median of 3).
        stalls = sorted(session.stall() for _ in range(3))
        figures["stream_longest_gap_ms_during_1536_prefill"] = stalls[1][0] * 1e3
        figures["ttft_s_1536_prompt_during_a_reply"] = stalls[1][1]
    finally:
        session.close()
    figures["peak_rss_mb"] = _peak_rss_mb()
    return figures


def aggregate_rounds(aggregate: Callable[[int], float], runs: int, levels: tuple[int, ...] = (1, 4, 8, 16)) -> Figures:
    """`aggregate(concurrency)` (tokens/s) for each level in turn, `runs` rounds, so that a slow minute of this shared
    machine hits every level: each level's best round, its rounds, and the median of the rounds' own ratios of the
    highest level over 1."""
    rounds: dict[int, list[float]] = {concurrency: [] for concurrency in levels}
    for _ in range(runs):
        for concurrency in levels:
            rounds[concurrency].append(aggregate(concurrency))
    figures: Figures = {}
    for concurrency in levels:
        figures[f"aggregate_tok_s_{concurrency}"] = max(rounds[concurrency])
        figures[f"aggregate_tok_s_{concurrency}_runs"] = [round(rate, 1) for rate in rounds[concurrency]]
    top = rounds[levels[-1]]
    figures[f"ratio_{levels[-1]}_over_1_median_round"] = statistics.median(
        high / one for high, one in zip(top, rounds[1], strict=True)
    )
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
            for _ in range(runs):  # best of `runs` at batch 8 too, as our aggregates
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


class LlamaCppSession:
    """llama.cpp through llama-cpp-python on the same GGUF and token ids, greedy, past end-of-text (`generate` yields
    tokens until told to stop), decode apart from prefill."""

    def __init__(self, threads: int) -> None:
        from llama_cpp import Llama

        from demo_engine.engine.gguf_loader import default_gguf_path

        self.llm = Llama(
            model_path=default_gguf_path(), n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads,
            verbose=False,
        )  # fmt: skip
        self.chat, self.long_prompt = prompt_ids()
        self.run(self.chat, 8)  # warm-up

    def run(self, prompt: list[int], n: int) -> tuple[float, list[float]]:
        """The start and the arrival time of each of `n` tokens."""
        self.llm.reset()  # no reuse of the previous run's cache: every run prefills its prompt
        started = time.perf_counter()
        stamps: list[float] = []
        for _token in self.llm.generate(prompt, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
            stamps.append(time.perf_counter())
            if len(stamps) == n:
                break
        return started, stamps

    def decode_rate(self, tokens: int) -> float:
        return _decode_rate(self.run(self.chat, tokens)[1])

    def close(self) -> None:
        self.llm.close()


def bench_llama_cpp(tokens: int, runs: int, threads: int) -> Figures:
    """llama.cpp's figures (see `LlamaCppSession`), and llama.cpp's own count of its decode time (C side only)."""
    import llama_cpp

    session = LlamaCppSession(threads)
    rates, c_side = [], []
    for _ in range(runs):
        llama_cpp.llama_perf_context_reset(session.llm.ctx)
        rates.append(session.decode_rate(tokens))
        perf = llama_cpp.llama_perf_context(session.llm.ctx)
        c_side.append(perf.n_eval / (perf.t_eval_ms / 1000) if perf.t_eval_ms > 0 else 0.0)
    runs_512 = (session.run(session.long_prompt, 1) for _ in range(2))
    prefill = min(stamps[0] - started for started, stamps in runs_512)
    session.close()
    return {
        "threads": threads,
        "version": llama_cpp.__version__,
        "decode_tok_s_batch1": max(rates),
        "decode_tok_s_batch1_runs": [round(rate, 1) for rate in rates],
        "decode_tok_s_batch1_c_side": max(c_side),
        "prefill_tok_s_512": 512 / prefill,
        "peak_rss_mb": _peak_rss_mb(),
    }


# --- batch 1 head to head: ours and llama.cpp alternately, each in a process of its own -------------------------------

DUEL_SESSIONS = {
    "ours": lambda args: OursSession(args.threads),
    "llama_cpp": lambda args: LlamaCppSession(args.threads),
}


def duel_worker(name: str, args: argparse.Namespace) -> int:
    """Load one contender, say "ready", then time one batch-1 decode for each line read on stdin."""
    session = DUEL_SESSIONS[name](args)
    print("ready", flush=True)
    for _line in sys.stdin:
        print(json.dumps({"rate": session.decode_rate(args.tokens)}), flush=True)
    session.close()
    return 0


def duel_rounds(names: tuple[str, str], rounds: int, decode: Any) -> dict[str, list[float]]:
    """`rounds` rounds of one decode each, the order swapped every round (a, b, b, a, a, b, ...): a minute when the
    machine is slow or fast falls on both alike. `decode(name)` times one run of that contender."""
    rates: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            rates[name].append(decode(name))
    return rates


def duel_figures(rates: dict[str, list[float]]) -> Figures:
    """Best of each, the ratio of the bests, and the median of the ratios of the two runs of each round."""
    ours, llama = rates["ours"], rates["llama_cpp"]
    pairs = sorted(a / b for a, b in zip(ours, llama, strict=True) if b)
    return {
        "duel_ours_decode_tok_s_batch1": max(ours, default=0.0),
        "duel_ours_decode_tok_s_batch1_runs": [round(rate, 1) for rate in ours],
        "duel_llama_cpp_decode_tok_s_batch1": max(llama, default=0.0),
        "duel_llama_cpp_decode_tok_s_batch1_runs": [round(rate, 1) for rate in llama],
        "ratio_batch1_vs_llama_cpp_interleaved": _ratio(max(ours, default=0.0), max(llama, default=0.0)),
        "ratio_batch1_vs_llama_cpp_interleaved_median_pair": pairs[len(pairs) // 2] if pairs else None,
    }


def run_duel(args: argparse.Namespace) -> Figures:
    """Ours and llama.cpp loaded side by side in two processes, timed alternately (`duel_rounds`), the other one
    idle while one runs; best of `--runs` each."""
    command = [sys.executable, "-m", "demo_engine.bench", "--tokens", str(args.tokens), "--threads", str(args.threads)]
    with contextlib.ExitStack() as stack:
        processes, errors = {}, {}
        for name in DUEL_SESSIONS:
            errors[name] = stack.enter_context(tempfile.TemporaryFile("w+"))  # not a pipe: a full one would block
            processes[name] = stack.enter_context(
                subprocess.Popen(
                    command + ["--duel-worker", name],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errors[name],
                    text=True,
                    env=dict(os.environ, HF_HUB_OFFLINE="1"),
                )
            )  # leaving closes its stdin (the worker's loop ends) and waits for it
        for name, process in processes.items():
            if process.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
                process.wait(timeout=60)
                errors[name].seek(0)
                return {"duel_error": f"{name}: " + (errors[name].read().strip().splitlines() or ["no answer"])[-1]}

        def decode(name: str) -> float:
            process = processes[name]
            process.stdin.write("run\n")  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
            return json.loads(process.stdout.readline())["rate"]  # type: ignore[union-attr]

        return duel_figures(duel_rounds(("ours", "llama_cpp"), max(args.runs, 2), decode))


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
    # named beside the ratio of the bests, once (the engine's own key is moved, not copied)
    summary["ratio_16_concurrent_vs_own_batch1_median_round"] = summary.pop("ratio_16_over_1_median_round", None)
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


# --- the engine on a GPU: Triton against the bf16 PyTorch baseline ---------------------------------------------------

NO_CUDA = 2  # exit status of --cuda without a CUDA device
DECODE_TARGET_TOK_S = 1500.0  # batch-1 decode on an H200
# Cache positions per slot. Under CUDA graphs attention is handed the whole cache length (no length read back): the
# Triton kernel skips the empty part, the baseline's SDPA reads it. 320 holds the prompt and 128 new tokens, and keeps
# that read at about 3% of the baseline's weight bytes a step (7 MB against 270 MB).
CUDA_BENCH_CONTEXT = 320
BASELINE_RATIO_TARGET = 3.0  # batch-1 decode against the dense bf16 PyTorch engine
# name -> (Engine.load arguments, forced dispatch backend, ENGINE_CUDA_GRAPHS, batch sizes)
CUDA_CONTENDERS: dict[str, tuple[dict[str, Any], str | None, str, tuple[int, ...]]] = {
    "triton": ({}, None, "on", (1, 8, 32)),
    "bf16_torch": ({"dense_bf16": True}, "torch", "on", (1, 8, 32)),
    "triton_no_graphs": ({}, None, "off", (1,)),  # what the CUDA graphs bring at batch 1
}


def _cuda_generate(engine: Any, prompt: list[int], params: Any, batch: int) -> tuple[float, float]:
    """(aggregate tokens/s end to end, mean per-request decode tokens/s after the first token) of `batch` concurrent
    greedy requests. A request that does not run to its token count is a failure, not a slow row."""
    started = time.perf_counter()
    handles = [engine.submit(prompt, params, lambda event: None) for _ in range(batch)]
    finals = [handle.wait(timeout=300) for handle in handles]
    elapsed = time.perf_counter() - started
    failed = [final for final in finals if final is None or final.finish_reason != "length"]
    if failed:
        first = failed[0]
        reason = "timed out" if first is None else f"{first.finish_reason}: {first.error}"
        raise RuntimeError(f"{len(failed)} of {batch} requests did not finish ({reason})")
    generated = sum(final.stats.generated_tokens for final in finals)
    rates = [final.stats.decode_tokens_per_s or 0.0 for final in finals]
    return generated / elapsed, sum(rates) / len(rates)


def cuda_engine_rows(
    new_tokens: int = 128,
    runs: int = 3,
    on_row: Any = None,
    device: str = "cuda",
    batches: tuple[int, ...] | None = None,
) -> list[Figures]:
    """One row per contender and batch size: greedy, past end-of-text, `new_tokens` per request, best of `runs` (by
    aggregate tokens/s) after a warm-up (Triton's compilation and the CUDA graphs' capture). Contenders, one engine
    at a time on the GPU: the fast path; the same engine with dense bf16 weights and PyTorch's own ops (cuBLAS
    matmuls, SDPA attention, PyTorch RMSNorm, rotary and SwiGLU), also replayed as CUDA graphs; and the fast path
    without CUDA graphs. Raises on any failure. `device` and `batches` (instead of each contender's) let the tests
    run this code on the CPU engine."""
    import torch

    from demo_engine.engine import Engine, SamplingParams
    from kernels import dispatch

    rows: list[Figures] = []
    for name, (load_args, backend, graphs, contender_batches) in CUDA_CONTENDERS.items():
        previous = os.environ.get("ENGINE_CUDA_GRAPHS")
        os.environ["ENGINE_CUDA_GRAPHS"] = graphs  # read when the scheduler is built
        try:
            context = max(CUDA_BENCH_CONTEXT, new_tokens + 128)  # room for the prompt (46 tokens) with --tokens
            engine = Engine.load(device=device, max_batch=32, max_context=context, **load_args)
        finally:
            if previous is None:
                del os.environ["ENGINE_CUDA_GRAPHS"]
            else:
                os.environ["ENGINE_CUDA_GRAPHS"] = previous
        prompt = engine.render_chat([{"role": "user", "content": BENCH_QUESTION}], max_new_tokens=new_tokens).token_ids
        params = SamplingParams(greedy=True, max_new_tokens=new_tokens, ignore_eos=True)
        engine.start()
        try:
            with dispatch.use_backend(backend):
                for batch in batches or contender_batches:
                    _cuda_generate(engine, prompt, params, batch)  # warm-up
                    measured = [_cuda_generate(engine, prompt, params, batch) for _ in range(runs)]
                    aggregate, decode = max(measured)
                    row = {"engine": name, "backend_label": engine.backend, "cuda_graphs": graphs == "on",
                           "batch": batch, "aggregate_tok_s": aggregate, "decode_tok_s": decode}  # fmt: skip
                    rows.append(row)
                    if on_row is not None:
                        on_row(row)
        finally:
            engine.stop()
            del engine
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return rows


def cuda_targets(rows: list[Figures]) -> list[Figures]:
    """The GPU targets, each with its value and whether it is met: batch-1 decode tokens/s, and batch-1 decode
    against the bf16 PyTorch baseline; plus the speedup over the baseline at every batch size measured."""
    by_key = {(row["engine"], row["batch"]): row for row in rows}
    fast, base = by_key.get(("triton", 1)), by_key.get(("bf16_torch", 1))
    targets: list[Figures] = []
    if fast:
        value = fast["decode_tok_s"]
        targets.append({"name": "batch-1 decode tok/s", "value": value, "target": DECODE_TARGET_TOK_S,
                        "met": value >= DECODE_TARGET_TOK_S})  # fmt: skip
    if fast and base:
        ratio = fast["decode_tok_s"] / base["decode_tok_s"]
        targets.append({"name": "batch-1 decode vs bf16 PyTorch", "value": ratio, "target": BASELINE_RATIO_TARGET,
                        "met": ratio >= BASELINE_RATIO_TARGET})  # fmt: skip
    for (engine, batch), row in sorted(by_key.items()):
        if engine == "triton" and ("bf16_torch", batch) in by_key:
            row["aggregate_vs_bf16_torch"] = row["aggregate_tok_s"] / by_key[("bf16_torch", batch)]["aggregate_tok_s"]
    return targets


def run_cuda(args: argparse.Namespace) -> int:
    """`--cuda`: the rows, the targets, one JSON object with --json; the exit status of the module docstring."""
    import torch

    def append(record: Figures) -> None:
        if args.jsonl:
            with open(args.jsonl, "a") as jsonl:
                jsonl.write(json.dumps(_rounded(record)) + "\n")

    if not torch.cuda.is_available():
        print("No CUDA device: the engine's GPU table needs one.")
        if args.json:
            print(json.dumps({"cuda": False}))
        return NO_CUDA
    rows: list[Figures] = []
    try:
        rows = cuda_engine_rows(new_tokens=args.tokens, on_row=lambda row: (append(row), print(_rounded(row))))
    except Exception as error:  # a failed row fails the run: reported, and the exit status says so
        failure = {"error": f"{type(error).__name__}: {error}"[:500]}
        append(failure)
        print("FAILED:", failure["error"])
        if args.json:
            print(json.dumps(_rounded({"cuda": True, "engine": rows, **failure})))
        return 1
    targets = cuda_targets(rows)
    for target in targets:
        append({"target": target})
        met = "met" if target["met"] else "MISSED"
        print(f"target {target['name']}: {target['value']:.2f} (target {target['target']}) {met}")
    if args.json:
        print(json.dumps(_rounded({"cuda": True, "device": torch.cuda.get_device_name(), "engine": rows,
                                   "targets": targets})))  # fmt: skip
    return 0


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
    parser.add_argument("--cuda", action="store_true", help="the engine on the GPU: Triton against bf16 PyTorch")
    parser.add_argument("--jsonl", help="with --cuda: append each row to this file as soon as it is measured")
    parser.add_argument("--only", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)  # one contender, in this process
    parser.add_argument("--duel-worker", choices=sorted(DUEL_SESSIONS), help=argparse.SUPPRESS)  # see `run_duel`
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.duel_worker:
        return duel_worker(args.duel_worker, args)

    if args.only:
        print(json.dumps(_rounded(CONTENDERS[args.only](args))))
        return 0
    if args.cuda:
        return run_cuda(args)

    load_before = os.getloadavg()
    ours = _in_subprocess("ours", args)
    cold = _in_subprocess("cold_start", args)
    variants = {}
    if not args.skip_variants:
        for prefix in ("torch", "avx2", "torch_avx2"):
            variants[prefix] = _in_subprocess(f"ours_{prefix}", args)
    transformers: Figures = {}
    llama: Figures = {}
    duel: Figures = {}
    if not args.skip_peers:
        transformers = _in_subprocess("transformers", args)
        if importlib.util.find_spec("llama_cpp") is not None:
            llama = _in_subprocess("llama_cpp", args)
            duel = run_duel(args)
        else:
            llama = {"skipped": "llama-cpp-python is not installed (make bench-peers)"}
    summary = summarize(ours, cold, transformers, llama, variants)
    summary.update(duel)
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
