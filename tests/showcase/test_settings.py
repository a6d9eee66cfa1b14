"""Settings come from the environment; bad values stop start-up with one line naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
GOOD_SECRET = "k3y-" + "x7Qp9vLm2sTz" * 6


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    ignored = {"DJANGO_PRODUCTION", "SECRET_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean = {name: value for name, value in os.environ.items() if name not in ignored}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value"),
    [("DEBUG", "maybe"), ("DATABASE_URL", "nosuchdb://x"), ("CELERY_TASK_TIME_LIMIT", "ten"), ("SECRET_KEY", "short")],
)
def test_malformed_variable_is_named_in_one_line(name, value):
    """A malformed variable makes manage.py exit non-zero with a single line that names it."""
    result = manage("check", **{name: value})
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert name in lines[0]


def test_production_requires_a_secret_key():
    """Production mode refuses to start without SECRET_KEY, and says so."""
    result = manage("check", DJANGO_PRODUCTION="1", ALLOWED_HOSTS="booth.example")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_passes_the_deploy_check():
    """`check --deploy --fail-level WARNING` passes in production mode."""
    result = manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_PRODUCTION="1", SECRET_KEY=GOOD_SECRET,
                    ALLOWED_HOSTS="booth.example")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_laptop_mode_fails_the_deploy_check():
    """The default (laptop) mode is not mistaken for a deployment: the deploy check reports its warnings."""
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS" in result.stdout + result.stderr
