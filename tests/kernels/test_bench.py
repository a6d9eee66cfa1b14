import json

import pytest
import torch

from kernels import bench


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without CUDA gets")
def test_bench_without_cuda_says_so_and_ends_with_json(capsys):
    """Without CUDA, `python -m kernels.bench --json` exits 0, says why, and its last line is {"cuda": false}."""
    assert bench.main(["--json"]) == 0
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
