"""Benchmark of the public pages against the real ASGI server: `python -m showcase.exhibits.bench [--json]`.

Builds a throw-away site (its own SQLite file and Redis database 8), loads the demo content plus WAIC's volume
(800 exhibitors, 3,000 products), starts Daphne exactly as `make run` does, and drives it with an asyncio
HTTP client at a fixed number of concurrent connections. Prints requests/s and latency percentiles per page;
with --json, one JSON object on the last line. The client shares the machine's cores with the server, so the
figures are a floor for what the server alone would do.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from showcase.launcher import BASE_DIR, free_port, web_command

PAGES = {
    # A request through the whole of Django with no page cache: what the front cache saves every public page.
    "django_floor_healthz": "/healthz/live",
    "home": "/",
    "directory": "/exhibitors/",
    "directory_filtered": "/exhibitors/?country=China&page=2",
}


async def _drive(url: str, *, connections: int, duration_s: float) -> dict:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one_connection() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.get(url)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_connection() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(quantiles[49] * 1000, 1),
        "p95_ms": round(quantiles[94] * 1000, 1),
        "p99_ms": round(quantiles[98] * 1000, 1),
    }


# wrk's own report lacks p95; this Lua hook prints the figures we want as one JSON line.
WRK_REPORT = """
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
    + summary.errors.timeout
  io.write(string.format('{"requests": %d, "errors": %d, "requests_per_s": %.1f, "p50_ms": %.1f, "p95_ms": %.1f, '
    .. '"p99_ms": %.1f}\\n', summary.requests, errors, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


def _drive_wrk(url: str, *, connections: int, duration_s: float, script: Path) -> dict:
    """wrk (C, one thread) loads the server far less than a Python client would on a 2-core machine."""
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _wait_live(url: str, *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per page")
    parser.add_argument("--exhibitors", type=int, default=800)
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    parser.add_argument(
        "--client",
        choices=["auto", "wrk", "httpx"],
        default="auto",
        help="load tool: wrk when installed (apt-get install wrk), else Python's httpx",
    )
    parser.add_argument("--no-page-cache", action="store_true", help="render every request (to see the cache's effect)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="showcase-bench-") as tmp:
        tmp_dir = Path(tmp)
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_dir / 'bench.sqlite3'}",
            "SHOWCASE_VAR_DIR": str(BASE_DIR / "var"),
            "MEDIA_ROOT": str(tmp_dir / "media"),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/8")
        if args.no_page_cache:
            env["SHOWCASE_PAGE_CACHE_SECONDS"] = "0"
        client = "wrk" if args.client == "wrk" or (args.client == "auto" and shutil.which("wrk")) else "httpx"
        script = tmp_dir / "report.lua"
        script.write_text(WRK_REPORT)
        _manage(env, "migrate", "--noinput", "-v", "0")
        _manage(env, "collectstatic", "--noinput", "-v", "0")
        _manage(env, "load_demo_content")
        _manage(env, "generate_volume_content", "--exhibitors", str(args.exhibitors), "--products", str(args.products))
        log = open(tmp_dir / "web.log", "wb")  # noqa: SIM115 - the server owns it until it stops
        server = subprocess.Popen(
            web_command(host="127.0.0.1", port=port),
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            if not _wait_live(f"{base}/healthz/live", timeout_s=60):
                print((tmp_dir / "web.log").read_text(errors="replace")[-2000:], file=sys.stderr)
                return 1
            results = {}
            for name, path in PAGES.items():
                # Warm-up: the first request renders and fills the page cache; measure the steady state.
                asyncio.run(_drive(base + path, connections=2, duration_s=1.0))
                if client == "wrk":
                    results[name] = _drive_wrk(
                        base + path, connections=args.connections, duration_s=args.duration, script=script
                    )
                else:
                    results[name] = asyncio.run(
                        _drive(base + path, connections=args.connections, duration_s=args.duration)
                    )
                row = results[name]
                print(
                    f"{name:20s} {row['requests_per_s']:8.1f} req/s   p50 {row['p50_ms']:6.1f} ms   "
                    f"p95 {row['p95_ms']:6.1f} ms   p99 {row['p99_ms']:6.1f} ms   errors {row['errors']}"
                )
        finally:
            server.terminate()
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:  # Daphne can wait on idle keep-alive sockets; nothing to save here
                server.kill()
                server.wait()
            log.close()
    summary = {
        "connections": args.connections,
        "duration_s": args.duration,
        "exhibitors": args.exhibitors,
        "products": args.products,
        "cpus": os.cpu_count(),
        "client": client,
        "page_cache": not args.no_page_cache,
        "pages": results,
    }
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
