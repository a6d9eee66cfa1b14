"""The real site for end-to-end tests: the Daphne ASGI server and a Celery worker in subprocesses, on the
Redis that `tests.redis_env` chose and a database of their own (an SQLite file, or a fresh PostgreSQL
database when DATABASE_URL names PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import redis

from showcase.launcher import die_with_parent, free_port, stop_process_groups, web_command, worker_command

BASE_DIR = Path(__file__).resolve().parent.parent


# The running site gets a Redis database of its own, so that in-process tests, which empty theirs, never wipe
# the worker's presence or a reply stream from under it. Two test runs on one machine take different ones.
STACK_REDIS_DBS = range(10, 16)
_COLLECTSTATIC = threading.Lock()
OWNER_KEY = "showcase:test-stack-owner"
METRICS_TOKEN = "test-metrics-token-0123456789"


def claim_stack_redis_db(base_url: str) -> str:
    """A Redis database for this run's site: a free one, or one whose owning test process has gone."""
    for db in STACK_REDIS_DBS:
        url = redis_url_with_db(base_url, db)
        client = redis.Redis.from_url(url)
        try:
            owner = client.get(OWNER_KEY)
            if owner is not None and psutil.pid_exists(int(owner)) and int(owner) != os.getpid():
                continue
            client.flushdb()
            client.set(OWNER_KEY, os.getpid())
            return url
        finally:
            client.close()
    raise RuntimeError(f"every Redis database in {list(STACK_REDIS_DBS)} is held by a running test session")


def redis_url_with_db(url: str, db: int) -> str:
    """The same Redis server, another database number."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def e2e_database_url(tmp_dir: Path) -> str:
    """A database for the subprocesses: a fresh PostgreSQL database beside DATABASE_URL's, or an SQLite file."""
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{tmp_dir / 'e2e.sqlite3'}"
    import psycopg

    server, _, name = base_url.rpartition("/")
    e2e_name = f"{name}_e2e"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{e2e_name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{e2e_name}"')
    return f"{server}/{e2e_name}"


@dataclass
class LiveStack:
    """A running site. `base_url` serves HTTP, `ws_url` WebSockets; the worker can be stopped and restarted."""

    tmp_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    web: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    claimed_redis: bool = True
    redis_prefix: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redis_url(self) -> str:
        return self.env["REDIS_URL"]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> LiveStack:
        self.prepare()
        self.spawn()
        self.wait_ready()
        return self

    def prepare(self) -> LiveStack:
        """The database, the site's Redis prefix and the static files (subprocesses that end: any thread may run
        this). `spawn` then starts the long-running processes, from the main thread: they die with the thread that
        started them (`die_with_parent`)."""
        self.port = free_port()
        var_dir = self.tmp_dir / "var"
        var_dir.mkdir(parents=True, exist_ok=True)
        shared_var = BASE_DIR / "var"  # the tokenizer cache and other build products are shared with the tests
        # A REDIS_URL or DATABASE_URL in extra_env (a private server of a fault test) is used as it is: the
        # shared Redis database and the shared PostgreSQL e2e database are then neither claimed nor recreated.
        self.claimed_redis = "REDIS_URL" not in self.extra_env
        self.env = {
            **os.environ,
            "DATABASE_URL": self.extra_env.get("DATABASE_URL") or e2e_database_url(self.tmp_dir),
            "REDIS_URL": claim_stack_redis_db(os.environ["REDIS_URL"]) if self.claimed_redis else "",
            "SHOWCASE_VAR_DIR": str(shared_var),
            "MEDIA_ROOT": str(var_dir / "media"),
            "PYTHONUNBUFFERED": "1",
            # Replies in tests stay short enough to keep the suite quick, long enough to stop one mid-way.
            "CHAT_MAX_NEW_TOKENS": "160",
            # Operations as in production: metrics of every process added up, behind a token; JSON log lines.
            "PROMETHEUS_MULTIPROC_DIR": str(self.tmp_dir / "metrics"),
            "METRICS_TOKEN": METRICS_TOKEN,
            "LOG_FORMAT": "json",
            **self.extra_env,
        }
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        if "SHOWCASE_REDIS_PREFIX" not in self.extra_env:
            self.env.pop("SHOWCASE_REDIS_PREFIX", None)  # the site's own, from its database
        (self.tmp_dir / "metrics").mkdir(exist_ok=True)
        self.manage("migrate", "--noinput", "-v", "0")
        self.redis_prefix = self.manage("redis_prefix").strip()
        with _COLLECTSTATIC:  # sites prepared side by side share the repository's STATIC_ROOT
            self.manage("collectstatic", "--noinput", "-v", "0")
        return self

    def spawn(self) -> LiveStack:
        self.start_worker()
        json_logs = self.env.get("LOG_FORMAT") == "json"
        self.web = self._spawn(web_command(host="127.0.0.1", port=self.port, json_logs=json_logs), "web.log")
        return self

    def manage(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.tmp_dir / log_name, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        # Tied to this test process: a test run that is killed leaves no server or worker behind to steal tasks.
        return subprocess.Popen(args, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=die_with_parent)  # fmt: skip

    def start_worker(self) -> None:
        self.worker = self._spawn(
            worker_command(queues="inference,default", concurrency=8, json_logs=self.env.get("LOG_FORMAT") == "json"),
            "worker.log",
        )

    def stop_worker(self, *, sig: int = signal.SIGTERM) -> None:
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, sig)
            self.worker.wait(timeout=30)

    def log(self, name: str) -> str:
        path = self.tmp_dir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def get(self, path: str, timeout: float = 10) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        status = 0
        while time.monotonic() < deadline:
            for name, process in (("web", self.web), ("worker", self.worker)):
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{self.log(name + '.log')[-3000:]}")
            try:
                status, _ = self.get("/healthz/ready", timeout=5)
            except OSError:
                status = 0
            if status == 200:
                return
            time.sleep(0.3)
        raise RuntimeError(f"site not ready in {timeout_s} s (last status {status}):\n{self.log('worker.log')[-3000:]}")

    def stop(self) -> None:
        stop_process_groups([self.web, self.worker])
        if not self.claimed_redis:
            return
        client = redis.Redis.from_url(self.redis_url)
        client.delete(OWNER_KEY)
        client.close()
