"""Small versions of the load test and the soak (`make loadtest`, `make soak`) against the real site: many sockets
held while some chat, pages under wrk up to past saturation, and a short mixed run with every process's memory."""

import asyncio
import json
import shutil

import pytest

from showcase.reliability import loadtest
from showcase.reliability.site import redis_server_pid
from showcase.reliability.soak import soak

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_forty_sockets_held_while_four_chat(live_stack, capsys):
    """With 40 chat sockets open on one Daphne process and 4 of them chatting at once, every reply arrives
    complete and in order, every idle socket still answers, and the server's memory stays bounded."""
    code = loadtest.main(["--url", live_stack.base_url, "--web-pid", str(live_stack.web.pid), "--sockets", "40",
                          "--chats", "4", "--max-new-tokens", "16", "--skip-pages", "--json"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    chat = summary["chat"]
    assert code == 0 and summary["passed"], chat
    assert chat["replies_done"] == chat["replies_complete_and_in_order"] == 4
    assert chat["sockets_still_open"] == 40
    assert chat["tokens"] > 0 and chat["aggregate_tokens_per_s"] > 0 and chat["ttft_ms_p95"] >= chat["ttft_ms_p50"]
    memory = chat["web_memory"]
    assert memory["before_mb"] > 0 and memory["sockets_closed_mb"] - memory["before_mb"] < 60, memory


def test_pages_past_saturation_get_slower_never_errors(live_stack):
    """Home, directory and comparison under wrk, at 10 connections and at 100: every answer is a success."""
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed: apt-get install -y wrk")
    pages = loadtest.load_pages(live_stack.base_url, connections=10, saturation_connections=100, duration_s=1)
    assert set(pages) == {"home", "directory", "compare"}
    for name, runs in pages.items():
        for label, row in runs.items():
            assert row["requests"] > 0, (name, label)
            assert row["non_2xx_3xx"] == 0 and row["socket_errors"] == 0, (name, label, row)
    assert loadtest.page_failures(pages) == 0


def test_short_soak_of_chat_and_browsing(live_stack):
    """A short mix of chat visitors (sockets churning) and page browsers: no reply fails or arrives out of order,
    no page fails, and the memory of web, worker and Redis is recorded at the start and the end."""
    pids = {"web": live_stack.web.pid, "worker": live_stack.worker.pid, "redis": redis_server_pid(live_stack.redis_url)}
    summary = asyncio.run(soak(live_stack.base_url, pids, seconds=8, warmup_s=3, visitors=2, browsers=2,
                               max_new_tokens=12))  # fmt: skip
    assert summary["replies_done"] > 0 and summary["pages_ok"] > 0
    assert summary["replies_failed"] == 0 and summary["page_failures"] == 0, summary["failures"]
    assert summary["replies_out_of_order"] == 0
    for name in ("web", "worker", "redis"):
        assert summary["memory_mb_start"][name] > 0 and summary["memory_mb_end"][name] > 0
