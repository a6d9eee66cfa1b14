import json

import pytest
import torch

from kernels import bench


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without CUDA gets")
def test_bench_without_cuda_says_so_and_ends_with_json(capsys):
    """Without CUDA, `python -m kernels.bench --json` exits with status 2 (no CUDA device), says why, and its last
    line is {"cuda": false}."""
    assert bench.main(["--json"]) == bench.NO_CUDA == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert "No CUDA device" in lines[0]
    assert json.loads(lines[-1]) == {"cuda": False}


def test_kernels_never_import_the_engine():
    """No module of `kernels` imports `demo_engine` (not even lazily): the kernels stand alone, the engine uses them."""
    import ast
    from pathlib import Path

    import kernels

    offenders = []
    for path in Path(kernels.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] == "demo_engine"]
    assert offenders == []


def test_a_failed_row_and_a_missed_target_show_in_the_summary():
    """A row with an error is listed as failed; the bandwidth target is judged on memory-bound rows only (a small
    row below the size threshold is not held to it) and is missed when one of them falls short."""
    small, big, slow_big, broken = (
        {"kernel": "rms_norm", "shape": "1x576", "triton_ms": 0.01},
        {"kernel": "swiglu", "shape": "4096x14336", "triton_ms": 0.1},
        {"kernel": "rms_norm", "shape": "4096x8192", "triton_ms": 1.0},
        {"kernel": "sample", "shape": "B1", "error": "RuntimeError: boom"},
    )
    copy_gbs = 4000.0
    bench.judge_bandwidth(small, 4 * 576 * 2, copy_gbs)
    bench.judge_bandwidth(big, 352_321_536, copy_gbs)  # 3523 GB/s: 88% of copy
    bench.judge_bandwidth(slow_big, 268_435_456, copy_gbs)  # 268 GB/s: 7%
    assert "bandwidth_target_met" not in small and big["bandwidth_target_met"] and not slow_big["bandwidth_target_met"]
    gemm = {"kernel": "q4_1_matmul", "shape": "M64 8192x8192", "triton_ms": 1.0}
    bench.judge_bandwidth(gemm, 41_943_040, copy_gbs, memory_bound=False)
    assert "bandwidth_target_met" not in gemm and gemm["copy_fraction"] > 0
    summary = bench.summarize([small, big, slow_big, broken], copy_gbs, "test")
    assert summary["failed_rows"] == ["sample B1"]
    assert summary["bandwidth_target"]["rows"] == 2 and summary["bandwidth_target"]["rows_met"] == 1
    assert summary["bandwidth_target"]["met"] is False
    assert bench.summarize([small, big], copy_gbs, "test")["bandwidth_target"]["met"] is True
