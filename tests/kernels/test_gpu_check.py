"""`bash kernels/gpu_check.sh` on a machine without CUDA: it checks what it can without Django or a GPU, writes its
JSON as it goes, and exits with the status that says "no CUDA device". What it does on a GPU is for the first GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernels import gpu_check

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the run a machine without CUDA gets")
def test_without_cuda_the_script_checks_the_environment_and_collection_then_exits_2(tmp_path):
    """The script finds every package and the model, collects both test selections without Django's conftests,
    writes a JSON line per stage and a summary, and exits 2 (no CUDA device)."""
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path))
    done = subprocess.run(
        ["bash", str(ROOT / "kernels" / "gpu_check.sh")], capture_output=True, text=True, env=env, timeout=240
    )
    assert done.returncode == gpu_check.EXIT_NO_CUDA == 2, done.stdout + done.stderr
    stages = [json.loads(line) for line in (tmp_path / "stages.jsonl").read_text().splitlines()]
    assert [(s["stage"], s["status"]) for s in stages] == [("environment", "passed"), ("collect", "passed")]
    assert stages[0]["cuda"] is False and stages[0]["model"].endswith(".gguf")
    assert all(" collected" in line for line in stages[1]["collected"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["exit_status"] == 2 and "no CUDA device" in summary["note"]
    assert "no CUDA device" in done.stdout
    assert len(list(tmp_path.iterdir())) <= 8


def test_a_missing_package_stops_the_run_with_status_3(tmp_path, monkeypatch):
    """A package the check needs and cannot import ends the run at once with status 3, naming it."""
    monkeypatch.setattr(gpu_check, "PACKAGES", (*gpu_check.PACKAGES, "no_such_package_for_the_gpu_check"))
    assert gpu_check.main(["--out", str(tmp_path)]) == gpu_check.EXIT_ENVIRONMENT == 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "no_such_package_for_the_gpu_check" in summary["note"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the run a machine without CUDA gets")
def test_without_the_engine_packages_only_the_kernels_are_collected(tmp_path, monkeypatch):
    """A missing engine package (or model wheel) leaves the kernels' checks to run: only their tests are collected,
    and the summary names what the engine's stages would lack."""
    monkeypatch.setattr(gpu_check, "ENGINE_PACKAGES", (*gpu_check.ENGINE_PACKAGES, "no_such_engine_package"))
    assert gpu_check.main(["--out", str(tmp_path)]) == gpu_check.EXIT_NO_CUDA
    stages = [json.loads(line) for line in (tmp_path / "stages.jsonl").read_text().splitlines()]
    assert stages[0]["missing"] == [] and "no_such_engine_package" in stages[0]["missing_for_engine"][0]
    assert stages[1]["stage"] == "collect" and stages[1]["status"] == "passed" and len(stages[1]["collected"]) == 1
    assert "no_such_engine_package" in json.loads((tmp_path / "summary.json").read_text())["note"]


def test_a_stage_out_of_time_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    """A stage past its limit is stopped, with the processes it started (here a child that would hold the output
    open for a minute), and recorded as timed_out in stages.jsonl at once; its output is kept."""
    monkeypatch.setitem(gpu_check.LIMITS, "collect", 1)
    check = gpu_check.Check(tmp_path, budget_s=60)
    code = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('started', flush=True)\n"
        "time.sleep(30)\n"
    )
    command = [sys.executable, "-c", code]
    status, code, seconds, output = check.run("collect", command)
    assert (status, code) == ("timed_out", None) and seconds < 10 and "started" in output
    check.record({"stage": "collect", "status": status, "seconds": seconds})
    assert json.loads((tmp_path / "stages.jsonl").read_text())["status"] == "timed_out"
    assert "stopped after 1 s" in (tmp_path / "log.txt").read_text()


def test_missed_targets_are_named_from_the_bench_summaries():
    """The bench stages' verdicts decide status 4: the kernels' bandwidth target and each engine target missed."""
    stages = [
        {"stage": "bench-kernels", "summary": {"bandwidth_target": {"met": False, "rows": 5, "rows_met": 3}}},
        {"stage": "bench-engine", "summary": {"targets": [
            {"name": "batch-1 decode tok/s", "value": 1700.0, "target": 1500.0, "met": True},
            {"name": "batch-1 decode vs bf16 PyTorch", "value": 2.5, "target": 3.0, "met": False},
        ]}},
    ]  # fmt: skip
    assert gpu_check.targets_missed(stages) == [
        "memory-bound kernels at 80% of copy bandwidth: 3 of 5",
        "batch-1 decode vs bf16 PyTorch: 2.50 < 3.0",
    ]
    assert gpu_check.targets_missed([{"stage": "bench-engine", "summary": None}]) == []
