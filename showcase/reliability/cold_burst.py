"""A burst of visitors on a page that is not cached, right after the server was past saturation: the case behind
the multi-second p95 of /compare/ in `make loadtest`, measured from both sides.

    python -m showcase.reliability.cold_burst [--path /compare/] [--connections 50] [--duration 10] [--rounds 2]

Starts a throw-away site (private Redis, 800 exhibitors, metrics on), then for each round: the directory at 400
connections for `--duration` s, a content-version bump (what any admin save does), and `--path` at `--connections`
with no warm-up. Prints wrk's view (p50, p95, max) next to the server's own (/metrics: requests over 1 s, page-cache
misses, and requests that shared a render under way, all for that page's view).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from showcase.reliability.loadtest import WRK_REPORT, wrk
from showcase.reliability.site import TemporarySite

TOKEN = "cold-burst-metrics-token"


def scrape(base_url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}  # fmt: skip


def total(samples: dict, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (n, ls), value in samples.items() if n == name and wanted <= set(ls))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default="/compare/")
    parser.add_argument("--view", default="live:compare", help="the URL name of --path's view (the metrics' label)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="showcase-cold-") as tmp:
        metrics_dir = Path(tmp) / "metrics"
        metrics_dir.mkdir()
        extra_env = {"METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        site = TemporarySite(Path(tmp), exhibitors=800, products=3000, extra_env=extra_env)
        site.start()
        try:
            script = Path(tmp) / "report.lua"
            script.write_text(WRK_REPORT)
            client = redis.Redis.from_url(site.env["REDIS_URL"])
            assert site.base_url and httpx.get(site.base_url + args.path, timeout=60).status_code == 200
            for round_number in range(args.rounds):
                wrk(site.base_url + "/exhibitors/", connections=400, duration_s=args.duration, script=script)
                time.sleep(2)  # the requests of closed connections still in the server finish first
                for key in client.scan_iter(match="*page-cache:version"):
                    client.incr(key)  # what an admin save does: every cached page is stale
                before = scrape(site.base_url)
                row = wrk(site.base_url + args.path, connections=args.connections, duration_s=args.duration,
                          script=script)  # fmt: skip
                after = scrape(site.base_url)

                def moved(name: str, after=after, before=before, **labels: str) -> int:
                    return round(total(after, name, **labels) - total(before, name, **labels))

                served = moved("showcase_http_request_duration_seconds_count", view=args.view)
                over_1s = served - moved("showcase_http_request_duration_seconds_bucket", view=args.view, le="1.0")
                print(f"round {round_number}: wrk {row['requests']} requests, p50 {row['p50_ms']} ms, p95 "
                      f"{row['p95_ms']} ms, max {row['max_ms']} ms | server: {served} requests, {over_1s} over 1 s, "
                      f"page cache miss {moved('showcase_page_cache_lookups_total', outcome='miss')}, shared "
                      f"{moved('showcase_page_cache_lookups_total', outcome='shared')}", flush=True)  # fmt: skip
            client.close()
        finally:
            site.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
