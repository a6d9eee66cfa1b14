"""A throw-away copy of the whole site for load and soak runs: its own SQLite file, a private Redis (the bundled
redis-server on a free port, so a shared Redis is never touched), a Celery worker and one Daphne process,
started exactly as `make run` starts them. Also: the memory of a process, as the reports print it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

from showcase.launcher import (
    BASE_DIR,
    EmbeddedRedis,
    die_with_parent,
    free_port,
    start_embedded_redis,
    stop_process_groups,
    web_command,
    worker_command,
)


def report_verdict(summary: dict, *, as_json: bool) -> int:
    """The last lines of a reliability run: PASSED or FAILED, the summary as one JSON line if asked; the exit
    status."""
    print("PASSED" if summary["passed"] else "FAILED")
    if as_json:
        print(json.dumps(summary))
    return 0 if summary["passed"] else 1


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # a child that just exited has no memory to count
            total += child.memory_info().rss
    return round(total / 2**20, 1)


def redis_server_pid(url: str) -> int:
    """The pid of the redis-server behind `url` (it runs on this machine: loopback only)."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


@dataclass
class TemporarySite:
    """Start with `.start()`, stop with `.stop()`; `base_url`, and the pids of web, worker and redis."""

    tmp_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    exhibitors: int = 0
    products: int = 0
    worker_concurrency: int = 16
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    redis: EmbeddedRedis | None = None
    web: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pids(self) -> dict[str, int]:
        return {"web": self.web.pid, "worker": self.worker.pid, "redis": self.redis.process.pid}

    def start(self, *, ready_timeout_s: float = 180) -> TemporarySite:
        self.redis = start_embedded_redis(self.tmp_dir)
        self.port = free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{self.tmp_dir / 'site.sqlite3'}",
            "REDIS_URL": self.redis.url,
            "SHOWCASE_VAR_DIR": str(BASE_DIR / "var"),  # the tokenizer cache is shared with `make run`
            "MEDIA_ROOT": str(self.tmp_dir / "media"),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        self._manage("migrate", "--noinput", "-v", "0")
        self._manage("collectstatic", "--noinput", "-v", "0")
        self._manage("load_demo_content")
        if self.exhibitors:
            self._manage("generate_volume_content", "--exhibitors", str(self.exhibitors),
                         "--products", str(self.products))  # fmt: skip
        self.worker = self._spawn(worker_command(queues="inference,default", concurrency=self.worker_concurrency),
                                  "worker.log")  # fmt: skip
        self.web = self._spawn(web_command(host="127.0.0.1", port=self.port), "web.log")
        self._wait_ready(ready_timeout_s)
        return self

    def _manage(self, *args: str) -> None:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env,
                                capture_output=True, text=True)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.tmp_dir / log_name, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        return subprocess.Popen(args, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=die_with_parent)  # fmt: skip

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, process in (("web", self.web), ("worker", self.worker)):
                if process.poll() is not None:
                    log = (self.tmp_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{name} exited:\n{log}")
            try:
                with urllib.request.urlopen(self.base_url + "/healthz/ready", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the temporary site was not ready in {timeout_s} s")

    def stop(self) -> None:
        stop_process_groups([self.web, self.worker])
        if self.redis is not None:
            self.redis.stop()
