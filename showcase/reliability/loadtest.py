"""Load test: many chat sockets held open on one Daphne process while some of them chat, then the public pages
under wrk at a steady load and past saturation. Loopback only, bounded in time.

    python -m showcase.reliability.loadtest [--sockets 200] [--chats 32] [--max-new-tokens 64]
        [--connections 50] [--saturation-connections 400] [--duration 10] [--reply-timeout 180]
        [--cold] [--url URL --web-pid PID] [--json]

Without --url it starts a throw-away site (private Redis, its own SQLite file, 800 exhibitors and 3,000 products,
one Celery worker, one Daphne) and stops it afterwards. With --url it drives a running site (give --web-pid to
report the ASGI process's memory). Exit status 0 only when every reply arrived complete and in order, every idle
socket was still open at the end, and no page request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from demo_engine.chat_client import ChatSocketClient, ReplyResult
from demo_engine.chatbench import QUESTIONS, percentile, stream_is_complete
from showcase.reliability.site import TemporarySite, report_verdict, rss_mb

PAGES = {"home": "/", "directory": "/exhibitors/", "compare": "/compare/"}

# wrk's own report has no p95 and lumps failures together; this hook prints one JSON line with each kind apart.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "requests_per_s": %.1f, "p50_ms": %.1f, "p95_ms": %.1f, "p99_ms": %.1f, '
    .. '"max_ms": %.1f, "non_2xx_3xx": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, '
    .. '"timeouts": %d}\\n', summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect, e.read, e.write, e.timeout))
end
"""


def memory_of(pid: int | None) -> float | None:
    return rss_mb(pid) if pid else None


async def _open_socket(base_url: str, gate: asyncio.Semaphore) -> ChatSocketClient:
    async with gate:  # handshakes a few at a time: 200 at once would measure the accept queue, not the server
        client = ChatSocketClient(base_url)
        await client.connect()
        return client


async def _still_open(client: ChatSocketClient) -> bool:
    """The socket answers a ping with a pong (any other frame in between is skipped)."""
    try:
        await client.send({"type": "ping"})
        frames = await client.recv_until(lambda frame: frame.get("type") == "pong", timeout=60)
        return frames[-1]["type"] == "pong"
    except Exception:  # closed, reset or timed out: the socket did not hold
        return False


async def hold_and_chat(base_url: str, *, sockets: int, chats: int, max_new_tokens: int,
                        web_pid: int | None = None, reply_timeout_s: float = 180) -> dict:  # fmt: skip
    """Open `sockets` chat sockets, let `chats` of them ask at once, check every reply and every socket."""
    memory = {"before_mb": memory_of(web_pid)}
    gate = asyncio.Semaphore(20)
    opened_at = time.monotonic()
    clients = await asyncio.gather(*(_open_socket(base_url, gate) for _ in range(sockets)))
    open_s = time.monotonic() - opened_at
    memory["sockets_open_mb"] = memory_of(web_pid)
    try:
        started = time.monotonic()
        asks = [
            client.ask(
                QUESTIONS[index % len(QUESTIONS)],
                options={"temperature": 0.7, "seed": index, "max_new_tokens": max_new_tokens},
                timeout=reply_timeout_s,
            )  # fmt: skip
            for index, client in enumerate(clients[:chats])
        ]
        results = await asyncio.gather(*asks, return_exceptions=True)
        wall = time.monotonic() - started
        memory["after_chats_mb"] = memory_of(web_pid)
        alive = await asyncio.gather(*(_still_open(client) for client in clients))
    finally:
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
    await asyncio.sleep(1.0)
    memory["sockets_closed_mb"] = memory_of(web_pid)
    replies = [r for r in results if isinstance(r, ReplyResult)]
    done = [r for r in replies if r.end and r.end["status"] == "done"]
    tokens = sum((r.end.get("stats") or {}).get("generated_tokens", 0) for r in done)
    ttft = [r.client_ttft_s * 1000 for r in done if r.client_ttft_s is not None]
    return {
        "sockets": sockets,
        "chats": chats,
        "max_new_tokens": max_new_tokens,
        "open_sockets_s": round(open_s, 2),
        "replies_done": len(done),
        "replies_complete_and_in_order": sum(stream_is_complete(r) for r in done),
        "reply_errors": [repr(r)[:200] for r in results if not isinstance(r, ReplyResult)][:5],
        "replies_not_done": [
            {key: r.end.get(key) for key in ("status", "code", "reason")} if r.end else "no end"
            for r in replies
            if r not in done
        ][:5],  # fmt: skip
        "sockets_still_open": sum(alive),
        "chat_wall_s": round(wall, 2),
        "tokens": tokens,
        "aggregate_tokens_per_s": round(tokens / wall, 1) if wall else None,
        "ttft_ms_p50": round(percentile(ttft, 0.5), 1) if ttft else None,
        "ttft_ms_p95": round(percentile(ttft, 0.95), 1) if ttft else None,
        "web_memory": memory,
    }


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because a listen queue was full (Linux; machine-wide)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True)).get("ListenOverflows")
    return None


def wrk(url: str, *, connections: int, duration_s: float, script: Path) -> dict:
    """One wrk run (C, one thread: it takes far less CPU from the server than a Python client would), with the
    listen-queue overflows during it: each one is a connection left waiting for a retransmitted handshake, 1 to 7 s,
    which is what a multi-second p95 with a fast median looks like."""
    overflows_before = listen_overflows()
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "30s", "-s", str(script),
         url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    row = json.loads(output.strip().splitlines()[-1])
    row["connections"] = connections
    overflows_after = listen_overflows()
    if overflows_before is not None and overflows_after is not None:
        row["listen_overflows"] = overflows_after - overflows_before
    row["socket_errors"] = row["connect_errors"] + row["read_errors"] + row["write_errors"] + row["timeouts"]
    return row


def load_pages(base_url: str, *, connections: int, saturation_connections: int, duration_s: float,
               cold: bool = False) -> dict:  # fmt: skip
    """Each page at `connections`, then at `saturation_connections`: requests/s, p95, and every failure counted.
    Each page is first fetched for a second at 2 connections to fill the page cache, unless `cold`: then the steady
    run starts with the page not cached, as every page is right after a content save."""
    if shutil.which("wrk") is None:
        raise RuntimeError("the page load needs wrk: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="showcase-wrk-") as tmp:
        script = Path(tmp) / "report.lua"
        script.write_text(WRK_REPORT)
        results: dict = {}
        for name, path in PAGES.items():
            if not cold:
                wrk(base_url + path, connections=2, duration_s=1, script=script)  # warm-up: fills the page cache
            results[name] = {
                "steady": wrk(base_url + path, connections=connections, duration_s=duration_s, script=script),
                "saturated": wrk(
                    base_url + path, connections=saturation_connections, duration_s=duration_s, script=script
                ),  # fmt: skip
            }
    return results


def page_failures(pages: dict) -> int:
    return sum(run["non_2xx_3xx"] + run["socket_errors"] for page in pages.values() for run in page.values())


def print_report(summary: dict) -> None:
    chat = summary["chat"]
    memory = chat["web_memory"]
    print(f"chat: {chat['sockets']} sockets open in {chat['open_sockets_s']} s, {chat['chats']} chatting at once")
    print(
        f"  replies done {chat['replies_done']}/{chat['chats']}, complete and in order "
        f"{chat['replies_complete_and_in_order']}, sockets still open {chat['sockets_still_open']}/{chat['sockets']}"
    )
    print(
        f"  {chat['tokens']} tokens in {chat['chat_wall_s']} s = {chat['aggregate_tokens_per_s']} tokens/s; "
        f"TTFT p50 {chat['ttft_ms_p50']} ms, p95 {chat['ttft_ms_p95']} ms"
    )
    print(f"  Daphne RSS (MB): before {memory['before_mb']}, {chat['sockets']} sockets open "
          f"{memory['sockets_open_mb']}, after the chats {memory['after_chats_mb']}, sockets closed "
          f"{memory['sockets_closed_mb']}")  # fmt: skip
    for name, runs in summary.get("pages", {}).items():
        for label, row in runs.items():
            print(f"page {name:10s} {label:9s} c={row['connections']:<4d} {row['requests_per_s']:8.1f} req/s  "
                  f"p50 {row['p50_ms']:7.1f} ms  p95 {row['p95_ms']:7.1f} ms  max {row['max_ms']:8.1f} ms  "
                  f"non-2xx {row['non_2xx_3xx']}  socket errors {row['socket_errors']}  "
                  f"listen overflows {row.get('listen_overflows', '?')}")  # fmt: skip


def passed(summary: dict) -> bool:
    chat = summary["chat"]
    ok = chat["replies_complete_and_in_order"] == chat["replies_done"] == chat["chats"]
    ok = ok and chat["sockets_still_open"] == chat["sockets"]
    return ok and page_failures(summary.get("pages", {})) == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--chats", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--connections", type=int, default=50, help="page load: concurrent connections")
    parser.add_argument("--saturation-connections", type=int, default=400)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per page and load level")
    parser.add_argument("--exhibitors", type=int, default=800)
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--reply-timeout", type=float, default=180.0,
                        help="seconds a reply may take before it counts as lost (keeps the run bounded)")  # fmt: skip
    parser.add_argument("--skip-pages", action="store_true")
    parser.add_argument("--cold", action="store_true",
                        help="no warm-up: each page's first run starts with the page not cached")  # fmt: skip
    parser.add_argument("--url", help="drive a running site instead of starting a throw-away one")
    parser.add_argument("--web-pid", type=int, help="with --url: the Daphne process, to report its memory")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = parser.parse_args(argv)

    site = None
    with tempfile.TemporaryDirectory(prefix="showcase-load-") as tmp:
        try:
            if args.url:
                base_url, web_pid = args.url.rstrip("/"), args.web_pid
            else:
                print("starting a throw-away site (private Redis, 800 exhibitors)…", flush=True)
                # Every socket comes from 127.0.0.1, as a booth's visitors behind one NAT do: the site is set up
                # the way the README tells such a booth to, with room for every chat at once from one address.
                limits = {"CHAT_MAX_QUEUED": str(max(64, args.chats)),
                          "CHAT_MAX_IN_FLIGHT_PER_ADDRESS": str(max(8, args.chats))}  # fmt: skip
                site = TemporarySite(Path(tmp), exhibitors=args.exhibitors, products=args.products,
                                     extra_env=limits).start()  # fmt: skip
                base_url, web_pid = site.base_url, site.pids["web"]
            summary: dict = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}
            chat = hold_and_chat(base_url, sockets=args.sockets, chats=args.chats,
                                 max_new_tokens=args.max_new_tokens, web_pid=web_pid,
                                 reply_timeout_s=args.reply_timeout)  # fmt: skip
            summary["chat"] = asyncio.run(chat)
            if not args.skip_pages:
                summary["pages"] = load_pages(base_url, connections=args.connections,
                                              saturation_connections=args.saturation_connections,
                                              duration_s=args.duration, cold=args.cold)  # fmt: skip
            summary["load_average_after"] = os.getloadavg()
        finally:
            if site is not None:
                site.stop()
    print_report(summary)
    summary["passed"] = passed(summary)
    return report_verdict(summary, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
