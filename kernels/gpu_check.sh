#!/usr/bin/env bash
# The one device check for the kernels: the `gpu` tests and the benchmark, outputs under $OUT, in under 6 minutes.
# Installs nothing. Run from the repository root on a CUDA machine: bash kernels/gpu_check.sh
set -u
OUT="${OUT:-./gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
# about 2 minutes: every kernel test on the GPU (compilation dominates)
timeout 150 "$PY" -m pytest -m gpu tests/kernels -q -p no:cacheprovider --junitxml="$OUT/pytest-gpu.xml" \
    > "$OUT/pytest-gpu.txt" 2>&1
echo "pytest rc=$?" >> "$OUT/pytest-gpu.txt"
# at most 140 s: the kernels (torch.compile comparisons stop after 80 s)
timeout 140 "$PY" -m kernels.bench --json --budget-s 80 > "$OUT/bench.txt" 2>&1
echo "bench rc=$?" >> "$OUT/bench.txt"
grep '^{' "$OUT/bench.txt" | tail -n 1 > "$OUT/bench.json" || true
# at most 60 s: the engine with these kernels against eager (the engine's own benchmark; kernels never import it)
timeout 60 "$PY" -m demo_engine.bench --cuda --json > "$OUT/engine_bench.txt" 2>&1
echo "engine bench rc=$?" >> "$OUT/engine_bench.txt"
tail -n 5 "$OUT/pytest-gpu.txt"
grep -v '^{' "$OUT/bench.txt" | tail -n 40
tail -n 3 "$OUT/engine_bench.txt"
