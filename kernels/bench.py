"""Benchmark of the Triton kernels against PyTorch on a CUDA device: `python -m kernels.bench [--json] [--jsonl PATH]`.

Per kernel and shape it prints the median time, the achieved GB/s (bytes the kernel must move / time) as a fraction
of the device's copy bandwidth measured in the same run (a 1 GiB device-to-device copy: read + write), and the
speedup over the PyTorch baseline run eagerly and compiled. The baseline of the 4-bit matmul is the fair one: the
same product on a dense bf16 weight dequantized once, one cuBLAS call (not the reference, which dequantizes the
whole weight on every call). Target: the memory-bound rows (every kernel but the 4-bit matmul on 64 rows) that
move at least `TARGET_MIN_BYTES` reach `COPY_FRACTION_TARGET` of the copy bandwidth; each row says whether it
does.

With --json the last line is one JSON object; --jsonl appends each row to a file as soon as it is measured (a run
stopped by a timeout keeps the rows done). Exit status: 0 every row ran, 1 a row failed, 2 no CUDA device
({"cuda": false}). Knows nothing about the model beyond the shapes listed here, and imports nothing of the engine:
the engine-level table is `python -m demo_engine.bench --cuda`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from kernels import reference

Row = dict[str, Any]
NO_CUDA = 2  # exit status without a CUDA device
COPY_FRACTION_TARGET = 0.80
# Rows that move less take a few microseconds on an H200 (about 4.3 TB/s), where launch latency, not bandwidth,
# decides; the target applies from here up.
TARGET_MIN_BYTES = 32 * 2**20


def _time_ms(fn: Callable[[], Any]) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=100, return_mode="median"))


def copy_bandwidth_gbs() -> float:
    """Device-to-device copy of 1 GiB: bytes read + written per second, in GB/s."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = _time_ms(lambda: dst.copy_(src))
    return 2 * src.numel() / ms / 1e6


def _cases(device: str) -> list[tuple[str, str, Callable[[], Any], Callable[[], Any], int]]:
    """(kernel, shape, triton call, reference call, bytes moved) for each benchmarked shape."""
    from kernels import ops
    from kernels.ops.q4_1_matmul import q4_1_matmul as triton_q4

    bf16 = torch.bfloat16
    cases = []
    for rows, cols in ((1, 576), (64, 576), (4096, 8192)):
        x = torch.randn(rows, cols, dtype=bf16, device=device)
        r = torch.randn_like(x)
        w = torch.ones(cols, dtype=torch.float32, device=device)
        cases.append(
            (
                "rms_norm",
                f"{rows}x{cols}",
                lambda x=x, r=r, w=w: ops.rms_norm(x, w, 1e-5, r),
                lambda x=x, r=r, w=w: reference.rms_norm(x, w, 1e-5, r),
                4 * x.numel() * 2,
            )
        )
    for rows, cols in ((1, 1536), (64, 1536), (4096, 14336)):
        g = torch.randn(rows, cols, dtype=bf16, device=device)
        u = torch.randn_like(g)
        cases.append(
            (
                "swiglu",
                f"{rows}x{cols}",
                lambda g=g, u=u: ops.swiglu(g, u),
                lambda g=g, u=u: reference.swiglu(g, u),
                3 * g.numel() * 2,
            )
        )
    for batch, tokens in ((1, 1), (32, 1), (1, 2048), (64, 512)):
        q = torch.randn(batch, tokens, 9, 64, dtype=bf16, device=device)
        k = torch.randn(batch, tokens, 3, 64, dtype=bf16, device=device)
        cos = torch.rand(batch, tokens, 32, device=device)
        sin = torch.rand_like(cos)
        moved = 2 * (q.numel() + k.numel()) * 2 + 2 * cos.numel() * 4
        cases.append(
            (
                "rotary",
                f"B{batch} T{tokens}",
                lambda q=q, k=k, c=cos, s=sin: ops.apply_rotary(q, k, c, s),
                lambda q=q, k=k, c=cos, s=sin: reference.apply_rotary(q, k, c, s),
                moved,
            )
        )
    for batch, length in ((1, 1024), (32, 1024), (8, 8192)):
        k_cache = torch.randn(batch, 3, length, 64, dtype=bf16, device=device)
        v_cache = torch.randn_like(k_cache)
        q = torch.randn(batch, 9, 64, dtype=bf16, device=device)
        slots = torch.arange(batch, device=device)
        lens = torch.full((batch,), length, dtype=torch.int32, device=device)
        cases.append(
            (
                "decode_attention",
                f"B{batch} L{length}",
                lambda a=(q, k_cache, v_cache, slots, lens): ops.decode_attention(*a, 0.125),
                lambda a=(q, k_cache, v_cache, slots, lens): reference.decode_attention(*a, 0.125),
                2 * k_cache.numel() * 2,
            )
        )
    for rows, n_out, n_in in ((1, 576, 576), (1, 1536, 576), (1, 8192, 8192), (16, 8192, 8192), (64, 8192, 8192)):
        n_blocks = n_in // 32
        blocks = torch.randint(0, 256, (n_out, n_blocks, 20), dtype=torch.uint8, device=device)
        blocks[..., 0:4] = torch.tensor([0.01, -0.05], dtype=torch.float16, device=device).view(torch.uint8)
        blocks = blocks.reshape(n_out, n_blocks * 20)
        x = torch.randn(rows, n_in, dtype=bf16, device=device)
        dense = reference.q4_1_dequantize(blocks, n_out, n_in, dtype=bf16)  # once: the baseline's weight
        cases.append(
            (
                "q4_1_matmul",
                f"M{rows} {n_out}x{n_in}",
                lambda x=x, b=blocks, n=n_out, k=n_in: triton_q4(x, b, n, k),
                lambda x=x, w=dense: torch.nn.functional.linear(x, w),  # cuBLAS, reading 3.2x the bytes
                blocks.numel(),
            )
        )
    for batch in (1, 32):
        logits = torch.randn(batch, 49152, device=device) * 3
        params = (
            torch.full((batch,), 0.8, device=device),
            torch.full((batch,), 50, device=device),
            torch.full((batch,), 0.9, device=device),
            torch.rand(batch, device=device),
        )
        cases.append(
            (
                "sample",
                f"B{batch} V49152",
                lambda lg=logits, p=params: ops.sample(lg, *p),
                lambda lg=logits, p=params: reference.sample(lg, *p),
                logits.numel() * 4,
            )
        )
    return cases


def _compile_row(row: Row, reference_call: Callable[[], Any]) -> None:
    try:
        compiled = torch.compile(reference_call)
        row["compile_ms"] = _time_ms(compiled)
        row["speedup_vs_compile"] = row["compile_ms"] / row["triton_ms"]
    except Exception as error:  # a compile failure is a finding, not a crash of the benchmark
        row["compile_error"] = f"{type(error).__name__}: {error}"[:200]


def judge_bandwidth(row: Row, moved: int, copy_gbs: float, memory_bound: bool = True) -> None:
    """Add the row's GB/s, its fraction of the copy bandwidth and, for a memory-bound row of at least
    TARGET_MIN_BYTES, whether the target holds."""
    row["bytes_moved"] = moved
    row["gbs"] = moved / row["triton_ms"] / 1e6
    row["copy_fraction"] = row["gbs"] / copy_gbs
    if memory_bound and moved >= TARGET_MIN_BYTES:
        row["bandwidth_target_met"] = row["copy_fraction"] >= COPY_FRACTION_TARGET


def kernel_rows(copy_gbs: float, deadline: float, on_row: Callable[[Row], None] = lambda row: None) -> list[Row]:
    """One row per kernel and shape, each handed to `on_row` once measured; torch.compile (seconds per shape) is
    skipped once time.monotonic() > deadline. A failing shape gives a row with "error" (the run goes on)."""
    rows: list[Row] = []
    for kernel, shape, triton_call, reference_call, moved in _cases("cuda"):
        row: Row = {"kernel": kernel, "shape": shape}
        try:
            row["triton_ms"] = _time_ms(triton_call)
            row["eager_ms"] = _time_ms(reference_call)
            # The 4-bit matmul does 1.6 multiply-adds per weight byte and row (0.625 bytes a weight): about 26 at 16
            # rows, memory-bound; about 100 at 64 rows, at an H200's ridge (bf16 FLOP/s over bandwidth, about 100
            # multiply-adds a byte), so that row is not held to the bandwidth target.
            gemm = kernel == "q4_1_matmul" and shape.startswith("M64 ")
            judge_bandwidth(row, moved, copy_gbs, memory_bound=not gemm)
            row["speedup_vs_eager"] = row["eager_ms"] / row["triton_ms"]
            if kernel == "q4_1_matmul":
                row["baseline"] = "bf16 dense weight, cuBLAS"
            elif time.monotonic() > deadline:
                row["compile_error"] = "skipped: out of time budget"
            else:
                _compile_row(row, reference_call)
        except Exception as error:  # the row fails, and the exit status says so; the other shapes still run
            row["error"] = f"{type(error).__name__}: {error}"[:300]
        rows.append(row)
        on_row(row)
    return rows


def summarize(rows: list[Row], copy_gbs: float, device: str) -> Row:
    """The JSON summary: the rows, the failed ones, and the bandwidth target over the memory-bound rows."""
    judged = [row for row in rows if "bandwidth_target_met" in row]
    return {
        "cuda": True,
        "device": device,
        "copy_gbs": copy_gbs,
        "kernels": rows,
        "failed_rows": [f"{row['kernel']} {row['shape']}" for row in rows if "error" in row],
        "bandwidth_target": {
            "copy_fraction": COPY_FRACTION_TARGET,
            "min_bytes": TARGET_MIN_BYTES,
            "rows": len(judged),
            "rows_met": sum(row["bandwidth_target_met"] for row in judged),
            "met": bool(judged) and all(row["bandwidth_target_met"] for row in judged),
        },
    }


def _print_table(rows: list[Row], copy_gbs: float) -> None:
    print(f"device copy bandwidth: {copy_gbs:.0f} GB/s")
    print(f"{'kernel':<18}{'shape':<20}{'triton ms':>10}{'GB/s':>8}{'of copy':>9}{'x eager':>9}{'x compile':>10}")
    for row in rows:
        if "error" in row:
            print(f"{row['kernel']:<18}{row['shape']:<20} error: {row['error']}")
            continue
        compile_speedup = f"{row['speedup_vs_compile']:.2f}" if "speedup_vs_compile" in row else "n/a"
        target = {True: "  target met", False: "  target MISSED"}.get(row.get("bandwidth_target_met"), "")
        print(
            f"{row['kernel']:<18}{row['shape']:<20}{row['triton_ms']:>10.4f}{row['gbs']:>8.0f}"
            f"{row['copy_fraction']:>9.0%}{row['speedup_vs_eager']:>9.2f}{compile_speedup:>10}"
            + ("  (x eager: against bf16 cuBLAS)" if row["kernel"] == "q4_1_matmul" else "")
            + target
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    parser.add_argument("--budget-s", type=float, default=120.0, help="stop torch.compile comparisons after this")
    parser.add_argument("--jsonl", help="append each row to this file as one JSON line as soon as it is measured")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA device: the Triton kernels are benchmarked on a GPU only (correctness: pytest tests/kernels).")
        if args.json:
            print(json.dumps({"cuda": False}))
        return NO_CUDA
    started = time.monotonic()

    def append(row: Row) -> None:
        if args.jsonl:
            with open(args.jsonl, "a") as jsonl:
                jsonl.write(json.dumps(row) + "\n")

    copy_gbs = copy_bandwidth_gbs()
    append({"copy_gbs": copy_gbs, "device": torch.cuda.get_device_name()})
    rows = kernel_rows(copy_gbs, deadline=started + args.budget_s, on_row=append)
    _print_table(rows, copy_gbs)
    summary = summarize(rows, copy_gbs, torch.cuda.get_device_name())
    target = summary["bandwidth_target"]
    print(
        f"memory-bound rows (>= {TARGET_MIN_BYTES / 2**20:.0f} MiB moved) at >= {COPY_FRACTION_TARGET:.0%} of copy "
        f"bandwidth: {target['rows_met']} of {target['rows']} ({'met' if target['met'] else 'MISSED'})"
    )
    if summary["failed_rows"]:
        print("failed rows:", ", ".join(summary["failed_rows"]))
    if args.json:
        print(json.dumps(summary))
    return 1 if summary["failed_rows"] else 0


if __name__ == "__main__":
    sys.exit(main())
