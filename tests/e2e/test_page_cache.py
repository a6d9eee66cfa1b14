"""The page cache of the running site (real Daphne, real Redis) against query strings a hostile client makes up."""

import asyncio
import uuid

import httpx
import pytest
import redis

from tests.e2e.test_operations import moved, scrape

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def page_cache_bytes(client: redis.Redis, prefix: str) -> int:
    """What every key of the site's page cache takes in its Redis, by Redis's own MEMORY USAGE."""
    return sum(client.memory_usage(key) or 0 for key in client.scan_iter(match=f"{prefix}page-cache:*", count=1000))


def test_two_hundred_junk_query_strings_leave_redis_as_it_was(live_stack):
    """200 requests for /compare/?junk=<random> are all answered, and the page cache in Redis holds no more than
    it did before them (they were 22 MB when every variant was kept)."""
    client = redis.Redis.from_url(live_stack.redis_url)
    try:
        for _ in range(2):  # the canonical page, stored once and replayed
            assert live_stack.get("/compare/")[0] == 200
        before = page_cache_bytes(client, live_stack.redis_prefix)
        for _ in range(200):
            status, body = live_stack.get(f"/compare/?junk={uuid.uuid4().hex}")
            assert status == 200 and b"<html" in body
        after = page_cache_bytes(client, live_stack.redis_prefix)
    finally:
        client.close()
    assert before > 3_000  # the canonical page is there: the measure sees the cache
    assert after - before < 5_000, (before, after)


def test_fifty_first_visits_to_a_cold_page_render_it_once(live_stack):
    """Right after a content change, 50 visitors asking for /compare/ at once get it from one render (the metrics
    count one miss; the rest shared it or hit the stored page), instead of 50 renders queued one after another."""
    assert live_stack.get("/compare/")[0] == 200  # the cache and its version exist
    client = redis.Redis.from_url(live_stack.redis_url)
    try:
        [version_key] = client.scan_iter(match=f"{live_stack.redis_prefix}page-cache:version")
        client.incr(version_key)  # what a content save does: every stored page is stale
    finally:
        client.close()
    before = scrape(live_stack.base_url)

    async def visitors():
        async with httpx.AsyncClient(base_url=live_stack.base_url, timeout=60) as http:
            return await asyncio.gather(*(http.get("/compare/") for _ in range(50)))

    answers = asyncio.run(visitors())
    after = scrape(live_stack.base_url)
    assert [answer.status_code for answer in answers] == [200] * 50
    assert len({answer.content for answer in answers}) == 1
    assert moved(before, after, "showcase_page_cache_lookups_total", outcome="miss") == 1
    assert (
        moved(before, after, "showcase_page_cache_lookups_total", outcome="shared")
        + moved(before, after, "showcase_page_cache_lookups_total", outcome="hit")
        == 49
    )
