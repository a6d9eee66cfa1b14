"""Where a native decode step's time goes: a development tool, not part of serving.

    python -m demo_engine.step_profile [--threads N] [--position P] [--reps R] [--batch B ...] [--split-rows on off]

Builds a private copy of `engine/native_cpu.c` with `-DNC_PROFILE` (TSC cycles per phase of `nc_decode_step` and
`nc_head`, summed over the 30 layers), loads the engine on it and runs `model.decode` on B rows at position P, R times.
Prints, per batch size, the best whole step (`model.decode`: the native blocks, the head and the Python around them)
and each phase's best over the R steps in ms: on a shared machine whose speed swings, a phase's minimum is steadier than
any single step's breakdown. Phases: misc (RMSNorm, residual adds), qkv, rope+kv (rotary and the KV cache write),
attn, quant (activation quantization), out, gate_up (with SiLU), down, head. A step cut by rows between the threads
(from 4 rows a thread, see `row_parts` in native_cpu.c) has no phases but `rows` (the layers) and the head;
`--split-rows on off` times both cuts, step by step alternately.
"""

from __future__ import annotations

import argparse
import ctypes
import subprocess
import tempfile
import time
from pathlib import Path

PHASES = ["misc", "qkv", "rope+kv", "attn", "quant", "out", "gate_up", "down", "head-quant", "head", "rows"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--position", type=int, default=100, help="cache position of every row (its context length)")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument(
        "--split-rows", nargs="+", choices=["on", "off"], default=["on"], help="cut big steps by rows (the default)"
    )
    args = parser.parse_args(argv)

    import torch

    from demo_engine.engine import native

    workdir = Path(tempfile.mkdtemp(prefix="step_profile-"))

    def build(isa: str) -> Path:
        target = workdir / f"native_cpu-{isa}-profile.so"
        command = ["cc", *native.C_FLAGS, *native.ISA_FLAGS[isa], "-DNC_PROFILE", str(native.SOURCE), "-o", str(target)]
        subprocess.run([*command, "-lm"], check=True)
        return target

    native._build = build  # this process only
    from demo_engine.engine import Engine

    engine = Engine.load(max_batch=max(args.batch), threads=args.threads)
    model = engine.model
    if model.native is None:
        raise SystemExit("the native kernels are off here (ENGINE_NATIVE_CPU, or no compiler)")
    lib = model.native.lib
    lib.nc_profile.argtypes = [ctypes.c_void_p]
    tsc_hz = _tsc_hz(lib)
    cache = model.new_cache(max(args.batch), args.position + 2)
    counters = (ctypes.c_uint64 * 16)()
    print(f"{engine.backend}, {args.threads} thread(s), position {args.position}, best of {args.reps}", end="")
    print(f"; TSC {tsc_hz / 1e9:.3f} GHz")
    ceiling = _vnni_ceiling(lib, tsc_hz)
    for batch in args.batch:
        ids = torch.randint(0, model.config.vocab_size, (batch,))
        slots = torch.arange(batch, dtype=torch.int64)
        positions = torch.full((batch,), args.position, dtype=torch.int64)
        steps: dict[str, list[float]] = {mode: [] for mode in args.split_rows}
        phases: dict[str, list[list[int]]] = {mode: [] for mode in args.split_rows}
        with torch.inference_mode():
            model.decode(ids, cache, slots, positions)  # first calls
            for _ in range(args.reps):
                for mode in args.split_rows:
                    lib.nc_set_split_rows(model.native.context, int(mode == "on"))
                    lib.nc_profile(counters)
                    started = time.perf_counter()
                    model.decode(ids, cache, slots, positions)
                    steps[mode].append(time.perf_counter() - started)
                    lib.nc_profile(counters)
                    phases[mode].append(list(counters))
        lib.nc_set_split_rows(model.native.context, 1)
        for mode in args.split_rows:
            best = [min(run[i] for run in phases[mode]) / tsc_hz * 1e3 for i in range(len(PHASES))]
            shown = [(name, ms) for name, ms in zip(PHASES, best, strict=True) if name != "head-quant" and ms > 0]
            parts = ", ".join(f"{name} {ms:.2f}" for name, ms in shown)
            label = f"batch {batch}" + (f", split rows {mode}" if len(args.split_rows) > 1 else "")
            print(f"{label}: step {min(steps[mode]) * 1e3:.2f} ms; phases (best of each): {parts}; sum {sum(best):.2f}")
        if ceiling:
            floor_ms = _int16_instructions(model.config, batch) * ceiling / args.threads * 1e3
            print(
                f"  its int16 products alone, at vpdpwssd's own rate ({1e-9 / ceiling:.2f} a ns a thread, "
                f"measured now): {floor_ms:.2f} ms on {args.threads} thread(s)"
            )


def _vnni_ceiling(lib, tsc_hz: float) -> float:
    """Seconds a vpdpwssd (AVX-512: 32 int16 products) takes on one thread in a loop of nothing else, best of 5; 0.0
    without AVX-512."""
    lib.nc_vnni_cycles.restype = ctypes.c_uint64
    lib.nc_vnni_cycles.argtypes = [ctypes.c_int64]
    rounds = 2_000_000
    cycles = min(lib.nc_vnni_cycles(rounds) for _ in range(5))
    return cycles / tsc_hz / (12 * rounds)


def _int16_instructions(config, batch: int) -> float:
    """The vpdpwssd instructions of one decode step of `batch` rows: the four matmuls of every layer and the head."""
    dim, ffn = config.dim, config.ffn_dim
    qkv = (config.n_heads + 2 * config.n_kv_heads) * config.head_dim
    per_layer = qkv * dim + dim * config.n_heads * config.head_dim + 2 * ffn * dim + dim * ffn
    return batch * (config.n_layers * per_layer + config.vocab_size * dim) / 32


def _tsc_hz(lib) -> float:
    """The TSC's rate (what NC_PROFILE counts in), against the monotonic clock."""
    lib.nc_tsc.restype = ctypes.c_uint64
    t0, c0 = time.perf_counter(), lib.nc_tsc()
    time.sleep(0.2)
    return (lib.nc_tsc() - c0) / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
