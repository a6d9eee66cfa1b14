"""The web process sends tasks without loading what they run."""

import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def test_the_web_process_never_loads_torch():
    """Daphne imports the chat's and the booth's task modules to send work, and the admin's saves index content:
    none of that loads torch (the engine and the embedding model live in the worker). With torch, Daphne grew from
    97 MB to 315 MB at the first chat of a load test."""
    code = (
        "import sys, django; django.setup(); import showcase.asgi, demo_engine.consumers, demo_engine.api.views, "
        "demo_engine.tasks, demo_engine.booth.tasks, demo_engine.booth.index, demo_engine.booth.signals; "
        "print('torch' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "showcase.settings", "SHOWCASE_REDIS_PREFIX": "torch-probe"}
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                            timeout=120, check=True)  # fmt: skip
    assert result.stdout.strip().splitlines()[-1] == "False"
