"""Soak: mixed chat and browsing for a long while (20 minutes by default) against one throw-away site, with the
memory of every process (web, worker, redis) taken after a warm-up and at the end.

    python -m showcase.reliability.soak [--minutes 20] [--visitors 4] [--browsers 4] [--json]

Passes when no reply failed, no page request failed, and no process grew by more than 10% between the end of
the warm-up and the end of the run. Chat visitors open a socket, ask three questions, close it and start over
(so sockets and sessions churn); browsers fetch the home page, the directory (a different page and filter each
time), an exhibitor, the comparison and the chat page in a loop. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from demo_engine.chat_client import ChatSocketClient
from demo_engine.chatbench import QUESTIONS, stream_is_complete
from showcase.reliability.site import TemporarySite, report_verdict, rss_mb

GROWTH_LIMIT = 0.10
BROWSE_PATHS = ["/", "/exhibitors/?page={n}", "/exhibitors/?q=robot&page=1", "/compare/", "/ai-systems/",
                "/chat/", "/fr/compare/", "/zh-hans/"]  # fmt: skip


@dataclass
class SoakTally:
    replies_done: int = 0
    replies_failed: list[str] = field(default_factory=list)
    replies_out_of_order: int = 0
    replies_failed_detail: list[str] = field(default_factory=list)
    pages_ok: int = 0
    page_failures: list[str] = field(default_factory=list)
    memory: list[dict] = field(default_factory=list)


def describe_incomplete(result) -> str:
    """Why a finished reply's stream did not check out: its seqs and its token counts."""
    deltas = [frame for frame in result.frames if frame["type"] == "delta"]
    engine_tokens = (result.end.get("stats") or {}).get("generated_tokens")
    return (
        f"reply {result.message_id}: seqs {result.seqs[:3]}…{result.seqs[-3:]} ({len(result.seqs)} frames), "
        f"last delta tokens {deltas[-1]['tokens'] if deltas else None}, engine tokens {engine_tokens}"
    )


async def chat_visitor(base_url: str, index: int, deadline: float, tally: SoakTally, max_new_tokens: int) -> None:
    rounds = 0
    while time.monotonic() < deadline:
        try:
            async with ChatSocketClient(base_url) as client:
                for question in range(3):
                    if time.monotonic() >= deadline:
                        break
                    options = {"temperature": 0.7, "seed": index * 1000 + rounds * 3 + question,
                               "max_new_tokens": max_new_tokens}  # fmt: skip
                    result = await client.ask(QUESTIONS[(index + question) % len(QUESTIONS)], options=options,
                                              timeout=300)  # fmt: skip
                    if result.end["status"] == "done":
                        tally.replies_done += 1
                        if not stream_is_complete(result):
                            tally.replies_out_of_order += 1
                            tally.replies_failed_detail.append(describe_incomplete(result))
                    else:
                        tally.replies_failed.append(f"{result.end['status']}: {result.end.get('reason')}")
                    await asyncio.sleep(random.uniform(0.5, 2.0))
        except Exception as exc:  # any failure a visitor would see counts against the run
            tally.replies_failed.append(repr(exc)[:200])
        rounds += 1


async def page_browser(base_url: str, deadline: float, tally: SoakTally) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        n = 0
        while time.monotonic() < deadline:
            path = BROWSE_PATHS[n % len(BROWSE_PATHS)].format(n=1 + n % 30)
            n += 1
            try:
                response = await client.get(path)
                if response.status_code == 200:
                    tally.pages_ok += 1
                else:
                    tally.page_failures.append(f"{path}: {response.status_code}")
            except httpx.HTTPError as exc:
                tally.page_failures.append(f"{path}: {exc!r}"[:200])
            await asyncio.sleep(0.05)


def snapshot(pids: dict[str, int], label: str) -> dict:
    return {"at": label, "time": round(time.time(), 1), **{name: rss_mb(pid) for name, pid in pids.items()}}


async def sample_memory(pids: dict[str, int], deadline: float, tally: SoakTally, every_s: float) -> None:
    while (left := deadline - time.monotonic()) > every_s:
        await asyncio.sleep(every_s)
        tally.memory.append(snapshot(pids, "sample"))
    await asyncio.sleep(max(0.0, left))


# Memory is compared from the end of the warm-up, so the warm-up must outlast what fills up and then holds steady:
# a finished reply's stream is kept 120 s (reply_stream.FINISHED_STREAM_TTL_S). A 5-minute soak with a 30 s warm-up
# counted that filling as growth (Redis 5.6 -> 6.4 MB, +14%; 160 finished streams of about 4.7 KB held 760 KB).
WARMUP_MIN_S = 150.0


async def soak(base_url: str, pids: dict[str, int], *, seconds: float, warmup_s: float, visitors: int,
               browsers: int, max_new_tokens: int = 48) -> dict:  # fmt: skip
    """Run the mix for `warmup_s` then `seconds`; memory at the end of the warm-up and at the end."""
    tally = SoakTally()
    started = time.monotonic()
    deadline = started + warmup_s + seconds
    workload = [chat_visitor(base_url, i, deadline, tally, max_new_tokens) for i in range(visitors)]
    workload += [page_browser(base_url, deadline, tally) for _ in range(browsers)]
    tasks = [asyncio.create_task(job) for job in workload]
    await asyncio.sleep(warmup_s)
    start = snapshot(pids, "after warm-up")
    await sample_memory(pids, deadline, tally, every_s=max(5.0, seconds / 20))
    end = snapshot(pids, "end")
    await asyncio.gather(*tasks)
    growth = {name: round((end[name] - start[name]) / start[name], 4) for name in pids}
    summary = {
        "seconds": seconds,
        "warmup_s": warmup_s,
        "visitors": visitors,
        "browsers": browsers,
        "replies_done": tally.replies_done,
        "replies_failed": len(tally.replies_failed),
        "failures": tally.replies_failed[:5] + tally.page_failures[:5],
        "replies_out_of_order": tally.replies_out_of_order,
        "out_of_order_detail": tally.replies_failed_detail[:5],
        "pages_ok": tally.pages_ok,
        "page_failures": len(tally.page_failures),
        "memory_mb_start": start,
        "memory_mb_end": end,
        "memory_growth": growth,
        "memory_samples": tally.memory,
        "wall_s": round(time.monotonic() - started, 1),
    }
    summary["memory_ok"] = all(value <= GROWTH_LIMIT for value in growth.values())
    summary["passed"] = (summary["memory_ok"] and not tally.replies_failed and not tally.page_failures
                         and tally.replies_out_of_order == 0 and tally.replies_done > 0)  # fmt: skip
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="measured time, after the warm-up")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds (default: 10%% of the run, at least 150 s: see WARMUP_MIN_S)")  # fmt: skip
    parser.add_argument("--visitors", type=int, default=4, help="concurrent chat visitors")
    parser.add_argument("--browsers", type=int, default=4, help="concurrent page browsers")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else max(WARMUP_MIN_S, seconds / 10)
    with tempfile.TemporaryDirectory(prefix="showcase-soak-") as tmp:
        print(f"starting a throw-away site; soaking {args.minutes} min after a {warmup:.0f} s warm-up…", flush=True)
        # Visitors ask more than a real one would: lift the per-session rate limit for this site only.
        site = TemporarySite(Path(tmp), exhibitors=800, products=3000,
                             extra_env={"CHAT_RATE_LIMIT_PER_MINUTE": "1000"}).start()  # fmt: skip
        try:
            summary = asyncio.run(soak(site.base_url, site.pids, seconds=seconds, warmup_s=warmup,
                                       visitors=args.visitors, browsers=args.browsers))  # fmt: skip
        finally:
            site.stop()
    summary["cpus"], summary["load_average_end"] = os.cpu_count(), os.getloadavg()
    print(
        f"replies done {summary['replies_done']}, failed {summary['replies_failed']}, out of order "
        f"{summary['replies_out_of_order']}; pages ok {summary['pages_ok']}, failed {summary['page_failures']}"
    )
    for name in ("web", "worker", "redis"):
        print(
            f"{name:7s} RSS {summary['memory_mb_start'][name]:8.1f} MB after warm-up -> "
            f"{summary['memory_mb_end'][name]:8.1f} MB at the end ({summary['memory_growth'][name]:+.1%})"
        )
    for failure in summary["failures"] + summary["out_of_order_detail"]:
        print("  failure:", failure)
    return report_verdict(summary, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
