"""What an operator watches, on the running stack (real Daphne, a real Celery worker, real Redis): `/metrics` scraped
as Prometheus would, and the JSON log lines a log shipper follows a reply by."""

import asyncio
import json
import re
import subprocess
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from demo_engine.chat_client import ChatSocketClient
from showcase.launcher import free_port, web_command
from tests.stack import BASE_DIR, METRICS_TOKEN

pytestmark = [pytest.mark.e2e]

SHORT = {"temperature": 0.0, "seed": 3, "max_new_tokens": 8}


def scrape(base_url: str, token: str | None = METRICS_TOKEN) -> dict[tuple[str, tuple], float]:
    """Every sample of one scrape, by (name, sorted labels)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{base_url}/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when there is none yet)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def moved(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def api_key(live_stack) -> str:
    output = live_stack.manage("create_api_key", "metrics e2e")
    return re.search(r"sk-waic-[\w-]+", output).group(0)


async def one_chat(base_url: str) -> dict:
    async with ChatSocketClient(base_url) as client:
        result = await client.ask("What is WAIC?", options=SHORT)
    return result.end


def test_metrics_count_exactly_one_chat_and_one_api_call(live_stack):
    """After one chat reply and one API completion, the scrape's counters moved by exactly those two replies, their
    tokens, the API key's usage (by its prefix, never the key) and the pages served; the workers are alive."""
    key = api_key(live_stack)
    before = scrape(live_stack.base_url)
    end = asyncio.run(one_chat(live_stack.base_url))
    response = httpx.post(f"{live_stack.base_url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                          json={"model": "smollm2-135m-instruct", "max_tokens": 6, "temperature": 0,
                                "messages": [{"role": "user", "content": "Say hi"}]}, timeout=120)  # fmt: skip
    assert end["status"] == "done" and response.status_code == 200, response.text
    usage = response.json()["usage"]
    for _ in range(2):
        assert live_stack.get("/ai-systems/")[0] == 200
    time.sleep(1.5)  # the API's usage of completion tokens is recorded once its reply is final
    after = scrape(live_stack.base_url)

    assert moved(before, after, "showcase_replies_queued_total") == 2
    assert moved(before, after, "showcase_replies_total", status="done", code="none") == 2
    assert moved(before, after, "showcase_replies_total") == 2
    tokens = end["stats"]["generated_tokens"] + usage["completion_tokens"]
    assert moved(before, after, "showcase_tokens_generated_total") == tokens
    assert moved(before, after, "showcase_time_to_first_token_seconds_count") == 2
    assert moved(before, after, "showcase_time_per_output_token_seconds_count") == 2
    prefix = key[:12]
    assert moved(before, after, "showcase_api_requests_total", key_prefix=prefix) == 1
    assert moved(before, after, "showcase_api_tokens_total", key_prefix=prefix, kind="prompt") == usage["prompt_tokens"]
    assert (
        moved(before, after, "showcase_api_tokens_total", key_prefix=prefix, kind="completion")
        == (usage["completion_tokens"])
    )
    assert key not in str(after)
    assert moved(before, after, "showcase_http_requests_total", view="api:chat-completions",
                 method="POST", status="200") == 1  # fmt: skip
    # The second visit is replayed by the front cache and still counted, under the view that rendered it.
    assert moved(before, after, "showcase_http_requests_total", view="exhibits:ai_system_list", status="200") == 2
    assert moved(before, after, "showcase_page_cache_lookups_total", outcome="hit") >= 1
    assert value(after, "showcase_workers_alive") == 1
    assert value(after, "showcase_inference_queue_depth") == 0
    assert value(after, "showcase_engine_batch_size") == 0
    assert value(after, "showcase_redis_up") == 1


def test_open_chat_sockets_are_counted_while_open(live_stack):
    """Three chat sockets held open show as three more open /ws/chat/ connections, and go as soon as they are
    closed (the gauge counts sockets: a consumer waiting in channels-redis's receive may outlive its socket by
    seconds, and the gauge lagged that long)."""

    def open_sockets() -> float:
        return value(scrape(live_stack.base_url), "showcase_websocket_connections", path="/ws/chat/")

    async def scenario() -> tuple[float, float, float]:
        before = open_sockets()
        clients = [ChatSocketClient(live_stack.base_url) for _ in range(3)]
        for client in clients:
            await client.connect()
        during = open_sockets()
        for client in clients:
            await client.close()
        deadline = time.monotonic() + 3  # the scrape's own figures are written at once
        while (after := open_sockets()) != before and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return before, during, after

    before, during, after = asyncio.run(scenario())
    assert during - before == 3
    assert after == before


@pytest.mark.slow
def test_two_web_processes_add_up_in_one_scrape(live_stack):
    """With a second Daphne beside the first (same machine, same metrics directory), requests to each are counted,
    and a scrape of either process shows the sum of both."""
    port = free_port()
    second = subprocess.Popen(web_command(host="127.0.0.1", port=port), env=live_stack.env, cwd=BASE_DIR,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    second_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{second_url}/healthz/live", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the second web process did not start"
            time.sleep(0.3)
        before = scrape(live_stack.base_url)
        for _ in range(3):
            assert httpx.get(f"{live_stack.base_url}/healthz/live", timeout=10).status_code == 200
        for _ in range(5):
            assert httpx.get(f"{second_url}/healthz/live", timeout=10).status_code == 200
        from_first, from_second = scrape(live_stack.base_url), scrape(second_url)
    finally:
        second.terminate()
        second.wait(timeout=30)
    for after in (from_first, from_second):
        assert moved(before, after, "showcase_http_requests_total", view="health-live", status="200") == 8


def test_metrics_are_refused_without_the_token(live_stack):
    """/metrics answers 401 with no token or a wrong one, and never shows a series; with the token it answers."""
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": METRICS_TOKEN}):
        response = httpx.get(f"{live_stack.base_url}/metrics", headers=headers, timeout=10)
        assert response.status_code == 401 and "showcase_" not in response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert value(scrape(live_stack.base_url), "showcase_redis_up") == 1


def test_json_logs_follow_one_reply_from_the_socket_to_the_worker(live_stack):
    """With LOG_FORMAT=json every line of the web and worker logs is one JSON object, and one chat reply's id is on
    the web's "queued" line and on the worker's lines, with the same conversation and request ids."""
    web_from, worker_from = len(live_stack.log("web.log")), len(live_stack.log("worker.log"))
    end = asyncio.run(one_chat(live_stack.base_url))
    time.sleep(0.5)
    reply_id = end["message_id"]
    web_lines = live_stack.log("web.log")[web_from:].splitlines()
    worker_lines = live_stack.log("worker.log")[worker_from:].splitlines()
    web = [json.loads(line) for line in web_lines]  # every line parses
    worker = [json.loads(line) for line in worker_lines]
    queued = [e for e in web if e.get("event") == "reply.queued" and e.get("reply_id") == str(reply_id)]
    assert len(queued) == 1, web_lines[-20:]
    in_worker = [e for e in worker if e.get("reply_id") in (str(reply_id), reply_id)]
    finished = [e for e in in_worker if e.get("event") == "reply.finished"]
    assert len(finished) == 1 and finished[0]["status"] == "done", worker_lines[-20:]
    assert len(in_worker) >= 2  # Celery's own "received" / "succeeded" lines carry it too
    for event in in_worker:
        assert event["conversation_id"] == queued[0]["conversation_id"]
        assert event["request_id"] == queued[0]["request_id"]
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in web + worker)
