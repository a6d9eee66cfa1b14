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
