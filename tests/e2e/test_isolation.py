"""Sites that share one Redis never touch each other: two whole sites at once, each with a fresh database (so their
message ids collide), and one site whose database is reset while Redis keeps every key. Real Daphne, real Celery
workers, one real Redis database for all of them."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from demo_engine.chat_client import ChatSocketClient
from showcase.launcher import free_port
from tests.stack import LiveStack, claim_stack_redis_db

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GREEDY = {"temperature": 0.0, "seed": 7, "max_new_tokens": 24}
LONG = {"temperature": 0.7, "seed": 3, "max_new_tokens": 160}
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def shared_redis_url():
    import os

    url = claim_stack_redis_db(os.environ["REDIS_URL"])
    yield url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def start_site(tmp_path_factory, redis_url: str, name: str) -> LiveStack:
    return LiveStack(tmp_dir=tmp_path_factory.mktemp(name), extra_env={"REDIS_URL": redis_url}).start()


async def ask_and_stop_after_first_delta(base_url: str) -> dict:
    async with ChatSocketClient(base_url) as client:
        await client.send({"type": "send", "text": "Write a long story about a lighthouse.", "options": LONG})
        frames = await client.recv_until(lambda f: f["type"] == "delta", timeout=60)
        await client.send({"type": "stop"})
        frames += await client.recv_until(lambda f: f["type"] == "end", timeout=60)
        return {"reply_id": frames[1]["message"]["id"], "end": frames[-1]}


async def ask_long(base_url: str) -> dict:
    async with ChatSocketClient(base_url) as client:
        result = await client.ask("Write a long story about a lighthouse.", options=LONG, timeout=120)
        return {"reply_id": result.message_id, "end": result.end, "text": result.text, "cookie": client.cookie}


async def resumed_text(base_url: str, cookie: str, reply_id: int) -> str:
    async with ChatSocketClient(base_url, cookie=cookie) as client:
        await client.send({"type": "resume", "message_id": reply_id, "after_seq": 0})
        frames = await client.recv_until(lambda f: f["type"] == "end", timeout=30)
        return "".join(f["text"] for f in frames if f["type"] == "delta")


def test_two_sites_on_one_redis_keep_their_replies_stops_and_workers_apart(tmp_path_factory, shared_redis_url):
    """Site A and site B run at once on one Redis database, each with a new database, so reply ids are the same on
    both. Both answer a question in full; a visitor stopping a reply on A does not stop B's reply of the same id;
    a resume on B replays B's text; each site counts only its own worker, and with A's worker gone A says no worker
    runs instead of handing its reply to B's worker."""
    # Prepared side by side (migrate and collectstatic wait on subprocesses); their servers and workers are started
    # from this thread, as they die with the thread that starts them, and load together.
    sites = [LiveStack(tmp_dir=tmp_path_factory.mktemp(name), extra_env={"REDIS_URL": shared_redis_url})
             for name in ("site-a", "site-b")]  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(LiveStack.prepare, sites))
    while sites[1].port == sites[0].port:  # two free ports asked for at once may be the same one
        sites[1].port = free_port()
    site_a, site_b = (site.spawn() for site in sites)
    try:
        site_a.wait_ready()
        site_b.wait_ready()
        assert site_a.redis_prefix != site_b.redis_prefix

        async def first_round():
            async with ChatSocketClient(site_a.base_url) as a, ChatSocketClient(site_b.base_url) as b:
                return await asyncio.gather(a.ask(QUESTION, options=GREEDY), b.ask(QUESTION, options=GREEDY))

        on_a, on_b = asyncio.run(first_round())
        assert on_a.message_id == on_b.message_id, "fresh databases: the ids collide, which is the point"
        assert on_a.end["status"] == on_b.end["status"] == "done"
        assert on_a.text and on_a.text == on_b.text  # greedy, same model: the same answer, each complete

        async def second_round():
            return await asyncio.gather(ask_and_stop_after_first_delta(site_a.base_url), ask_long(site_b.base_url))

        stopped_on_a, full_on_b = asyncio.run(second_round())
        assert stopped_on_a["reply_id"] == full_on_b["reply_id"]
        assert stopped_on_a["end"]["status"] == "stopped"
        assert full_on_b["end"]["status"] == "done", full_on_b["end"]
        assert (
            asyncio.run(resumed_text(site_b.base_url, full_on_b["cookie"], full_on_b["reply_id"]))
            == (full_on_b["text"])
        )

        client = redis.Redis.from_url(shared_redis_url)
        try:
            for site in (site_a, site_b):
                assert client.zcard(site.redis_prefix + "workers") == 1
        finally:
            client.close()

        site_a.stop_worker()
        time.sleep(6)  # longer than a worker's presence lasts

        async def ask_a_without_its_worker():
            async with ChatSocketClient(site_a.base_url) as a:
                return await a.ask(QUESTION, options=GREEDY, timeout=30)

        orphan = asyncio.run(ask_a_without_its_worker())
        assert (orphan.end["status"], orphan.end["code"]) == ("failed", "no_worker")
    finally:
        site_a.stop()
        site_b.stop()


def test_a_reset_database_beside_a_redis_that_kept_its_keys_chats_normally(tmp_path_factory, shared_redis_url):
    """A site stops a reply, then its database is reset (a new SQLite file) while Redis keeps every key, and it
    starts again: the new replies, whose ids are the old ones again, all complete."""
    first = start_site(tmp_path_factory, shared_redis_url, "before-reset")
    try:
        stopped = asyncio.run(ask_and_stop_after_first_delta(first.base_url))
        assert stopped["end"]["status"] == "stopped"
    finally:
        first.stop()
    again = start_site(tmp_path_factory, shared_redis_url, "after-reset")
    try:
        assert again.redis_prefix != first.redis_prefix

        async def chat():
            async with ChatSocketClient(again.base_url) as client:
                return [await client.ask(QUESTION, options=GREEDY) for _ in range(2)]

        replies = asyncio.run(chat())
        assert replies[0].message_id == stopped["reply_id"], "the reset database reuses the stopped reply's id"
        assert [reply.end["status"] for reply in replies] == ["done", "done"]
        assert all(reply.text for reply in replies)
    finally:
        again.stop()
