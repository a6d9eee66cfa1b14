"""The page cache of the running site (real Daphne, real Redis) against query strings a hostile client makes up."""

import uuid

import pytest
import redis

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def page_cache_bytes(client: redis.Redis) -> int:
    """What every key of the exhibit pages' caches takes in the site's Redis, by Redis's own MEMORY USAGE."""
    return sum(client.memory_usage(key) or 0 for key in client.scan_iter(match="exhibits:*", count=1000))


def test_two_hundred_junk_query_strings_leave_redis_as_it_was(live_stack):
    """200 requests for /compare/?junk=<random> are all answered, and the page cache in Redis holds no more than
    it did before them (they were 22 MB when every variant was kept)."""
    client = redis.Redis.from_url(live_stack.redis_url)
    try:
        for _ in range(2):  # the canonical page, stored once and replayed
            assert live_stack.get("/compare/")[0] == 200
        before = page_cache_bytes(client)
        for _ in range(200):
            status, body = live_stack.get(f"/compare/?junk={uuid.uuid4().hex}")
            assert status == 200 and b"<html" in body
        after = page_cache_bytes(client)
    finally:
        client.close()
    assert before > 3_000  # the canonical page is there: the measure sees the cache
    assert after - before < 5_000, (before, after)
