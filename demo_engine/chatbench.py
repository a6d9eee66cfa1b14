"""Chat benchmark: N real WebSocket clients against a running site, each asking one question at the same time.
For the same replies it prints what the client saw (time to first token, tokens/s) against what the engine
reported, and checks that every stream arrived complete and in order.

    python -m demo_engine.chatbench --url http://127.0.0.1:8000 --clients 32 [--max-new-tokens 64] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

from demo_engine.chat_client import ChatSocketClient, ReplyResult

QUESTIONS = [
    "What is the capital of France?",
    "Give me three tips for a conference booth.",
    "Explain what a GPU is in two sentences.",
    "Write a haiku about Shanghai.",
    "What is continuous batching?",
    "Name three uses of small language models.",
    "How do I reverse a list in Python?",
    "Why is the sky blue?",
]


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def one_client(url: str, index: int, max_new_tokens: int) -> ReplyResult:
    async with ChatSocketClient(url) as client:
        options = {"temperature": 0.7, "seed": index, "max_new_tokens": max_new_tokens}
        return await client.ask(QUESTIONS[index % len(QUESTIONS)], options=options, timeout=600)


def stream_is_complete(result: ReplyResult) -> bool:
    """Sequence numbers 1..n with no gap or repeat, an `end` frame last, and every character of the saved reply."""
    end = result.end
    if end is None or result.seqs != list(range(1, len(result.seqs) + 1)):
        return False
    return len(result.text) == end.get("length", len(result.text))


async def run(url: str, clients: int, max_new_tokens: int) -> dict:
    started = time.monotonic()
    askers = (one_client(url, index, max_new_tokens) for index in range(clients))
    results = await asyncio.gather(*askers, return_exceptions=True)
    wall = time.monotonic() - started
    ok = [r for r in results if isinstance(r, ReplyResult) and r.end and r.end["status"] == "done"]
    errors = [repr(r) for r in results if not isinstance(r, ReplyResult)]
    client_ttft = [r.client_ttft_s * 1000 for r in ok if r.client_ttft_s is not None]
    engine_ttft = [r.end["stats"]["time_to_first_token_ms"] for r in ok if r.end.get("stats")]
    client_tps = [r.client_tokens_per_s for r in ok if r.client_tokens_per_s]
    engine_tps = [r.end["stats"]["tokens_per_second"] for r in ok if r.end.get("stats", {}).get("tokens_per_second")]
    tokens = sum(r.end["stats"]["generated_tokens"] for r in ok if r.end.get("stats"))
    summary = {
        "clients": clients,
        "completed": len(ok),
        "complete_and_in_order": sum(stream_is_complete(r) for r in ok),
        "errors": errors[:5],
        "wall_s": round(wall, 2),
        "aggregate_tokens_per_s": round(tokens / wall, 1) if wall else None,
        "client_ttft_ms_p50": percentile(client_ttft, 0.5),
        "engine_ttft_ms_p50": percentile(engine_ttft, 0.5),
        "client_ttft_ms_p95": percentile(client_ttft, 0.95),
        "engine_ttft_ms_p95": percentile(engine_ttft, 0.95),
        "client_tokens_per_s_mean": round(statistics.mean(client_tps), 2) if client_tps else None,
        "engine_tokens_per_s_mean": round(statistics.mean(engine_tps), 2) if engine_tps else None,
    }
    if summary["client_tokens_per_s_mean"] and summary["engine_tokens_per_s_mean"]:
        summary["client_over_engine_tokens_per_s"] = round(
            summary["client_tokens_per_s_mean"] / summary["engine_tokens_per_s_mean"], 3
        )
    if summary["client_ttft_ms_p50"] is not None and summary["engine_ttft_ms_p50"] is not None:
        gap = summary["client_ttft_ms_p50"] - summary["engine_ttft_ms_p50"]
        summary["client_minus_engine_ttft_ms_p50"] = round(gap, 1)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = parser.parse_args(argv)
    summary = asyncio.run(run(args.url, args.clients, args.max_new_tokens))
    width = max(len(key) for key in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["completed"] == args.clients == summary["complete_and_in_order"] else 1


if __name__ == "__main__":
    sys.exit(main())
