import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_every_kernel_compiles_for_the_h200():
    """Every kernel, with the launch parameters its launcher picks (fp32 and bf16), compiles to an sm_90 cubin."""
    script = Path(__file__).with_name("compile_sm90.py")
    root = Path(__file__).parents[2]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(Path.home())}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=root, env=env, timeout=240
    )
    assert result.returncode == 0, result.stderr[-3000:]
    compiled = {line.split()[0] for line in result.stdout.splitlines()}
    assert compiled == {
        "_rms_norm_kernel",
        "_swiglu_kernel",
        "_rotary_kernel",
        "_decode_attention_kernel",
        "_merge_splits_kernel",
        "_q4_1_gemv_kernel",
        "_q4_1_gemm_kernel",
        "_sample_kernel",
    }
