"""The ASGI layer that replays public pages from Redis without entering Django (PageCacheFront), around a
scripted inner application and the tests' real Redis."""

import asyncio
import os
import pickle

import pytest
import redis

from showcase.exhibits import page_cache
from showcase.exhibits.page_cache import PageCacheFront

PAGE = b"<h1>Exhibitors</h1>"
PUBLIC_HEADERS = [(b"content-type", b"text/html"), (b"x-page-cache", b"miss"), (b"content-security-policy", b"x")]


class Inner:
    """Stands in for Django: counts its calls and answers with the given status and headers."""

    def __init__(self, *, status: int = 200, headers=PUBLIC_HEADERS, padding: int = 0) -> None:
        self.calls, self.status, self.headers, self.padding = 0, status, headers, padding

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": PAGE + str(self.calls).encode() + b" " * self.padding})


def get(app, path: str = "/exhibitors/", *, host: bytes = b"127.0.0.1:8000", method: str = "GET", query=b""):
    scope = {"type": "http", "method": method, "scheme": "http", "path": path, "query_string": query,
             "headers": [(b"host", host)]}  # fmt: skip
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    client.close()


@pytest.fixture
def front(settings, db, redis_client):
    settings.SHOWCASE_PAGE_CACHE_SECONDS = 60
    for key in redis_client.scan_iter(match=page_cache.redis_key("*")):  # nothing left from an earlier test
        redis_client.delete(key)
    return lambda inner: PageCacheFront(inner)


def test_a_public_page_is_replayed_whole_without_entering_django(front):
    """A public page Django rendered once comes back whole (status, headers, body) without Django."""
    inner = Inner()
    app = front(inner)
    first = get(app)
    second = get(app)
    assert inner.calls == 1
    assert second[0] == 200 and second[2] == first[2] == PAGE + b"1"
    assert second[1][b"content-security-policy"] == b"x" and second[1][b"x-page-cache"] == b"front"


def test_a_content_change_is_shown_at_once(front):
    """After a content save the next request is rendered afresh, not replayed."""
    inner = Inner()
    app = front(inner)
    get(app)
    page_cache.bump_content_version()
    assert get(app)[2] == PAGE + b"2" and inner.calls == 2


@pytest.mark.parametrize(
    "inner",
    [
        Inner(headers=[(b"content-type", b"text/html")]),  # not marked public by the view
        Inner(headers=[*PUBLIC_HEADERS, (b"set-cookie", b"sessionid=1")]),  # carries something per visitor
        Inner(status=404),
        Inner(status=302),
    ],
    ids=["unmarked", "set-cookie", "404", "302"],
)
def test_only_public_200_pages_without_cookies_are_stored(front, inner):
    """Unmarked pages, pages setting a cookie, 404s and redirects are never replayed."""
    app = front(inner)
    get(app)
    get(app)
    assert inner.calls == 2


def test_the_same_parameters_in_another_order_are_one_entry(front):
    """`?b=2&a=1` is replayed the page stored for `?a=1&b=2`."""
    inner = Inner()
    app = front(inner)
    get(app, query=b"a=1&b=2")
    assert get(app, query=b"b=2&a=1")[2] == PAGE + b"1" and inner.calls == 1


def test_head_is_answered_from_a_stored_get_without_body(front):
    """A HEAD for a stored page gets its status and headers from the cache and no body."""
    inner = Inner()
    app = front(inner)
    get(app)
    status, headers, body = get(app, method="HEAD")
    assert status == 200 and headers[b"x-page-cache"] == b"front" and body == b"" and inner.calls == 1


def test_entries_are_data_not_pickle(front, redis_client):
    """A stored page is a JSON header line and the body; a pickle planted under the page's key is never loaded
    (the request goes to Django, and no code in the planted bytes runs)."""
    inner = Inner()
    app = front(inner)
    get(app)
    [key] = [k for k in redis_client.scan_iter(match=page_cache.redis_key("page", "*"))]
    stored = redis_client.get(key)
    header, _, body = stored.partition(b"\n")
    assert header.startswith(b'{"version":') and body == PAGE + b"1"

    class Planted:
        def __reduce__(self):
            return (os.system, ("touch /tmp/page-cache-pickle-ran",))

    redis_client.set(key, pickle.dumps(Planted()))
    assert get(app)[2] == PAGE + b"2" and inner.calls == 2
    assert not os.path.exists("/tmp/page-cache-pickle-ran")


def test_two_hundred_random_values_stay_within_the_memory_bound(front, settings, redis_client):
    """200 requests with random values of a known parameter, each a 20 KB page, leave the cache's keys within its
    1 MB bound by Redis's own MEMORY USAGE, and the newest pages are still served from the cache."""
    settings.SHOWCASE_PAGE_CACHE_MAX_MB = 1
    inner = Inner(padding=20_000)
    app = front(inner)
    for index in range(200):
        get(app, query=f"q={os.urandom(8).hex()}-{index}".encode())
    used = page_cache.memory_used(redis_client)
    assert 800_000 < used <= 1024 * 1024, used  # full, but not past the bound
    calls = inner.calls
    get(app, query=b"q=newest")
    assert get(app, query=b"q=newest")[1][b"x-page-cache"] == b"front" and inner.calls == calls + 1


def test_a_page_larger_than_the_bound_is_not_stored(front, settings, redis_client):
    """A single page bigger than the whole bound is served but not kept."""
    settings.SHOWCASE_PAGE_CACHE_MAX_MB = 0.01
    inner = Inner(padding=20_000)
    app = front(inner)
    get(app)
    get(app)
    assert inner.calls == 2 and page_cache.memory_used(redis_client) < 1000


def test_each_host_path_and_query_is_its_own_entry(front):
    """Another Host, path or query is never served a page stored for a different one."""
    inner = Inner()
    app = front(inner)
    get(app)
    get(app, host=b"evil.example")
    get(app, path="/fr/exhibitors/")
    get(app, query=b"country=China")
    assert inner.calls == 4


def test_other_methods_and_private_paths_pass_through(front):
    """POST, a HEAD with no stored GET, and private paths always reach Django."""
    inner = Inner()
    app = front(inner)
    for _ in range(2):
        get(app, method="HEAD")
        get(app, method="POST")
        get(app, path="/admin/")
    assert inner.calls == 6


def test_with_redis_unreachable_every_request_reaches_django(front, settings):
    """With Redis unreachable, pages are still served, by Django."""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    inner = Inner()
    app = front(inner)
    assert get(app)[0] == 200 and get(app)[0] == 200
    assert inner.calls == 2


class SlowInner(Inner):
    """Django taking its time over a render, as it does with fifty renders queued on its one sync thread."""

    async def __call__(self, scope, receive, send) -> None:
        await asyncio.sleep(0.2)
        await super().__call__(scope, receive, send)


async def burst(app, count: int, *, query: bytes = b""):
    async def one():
        sent: list[dict] = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "scheme": "http", "path": "/compare/", "query_string": query,
                 "headers": [(b"host", b"127.0.0.1:8000")]}  # fmt: skip
        await app(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    return await asyncio.gather(*(one() for _ in range(count)))


def test_a_burst_of_misses_for_one_page_renders_it_once(front):
    """Fifty visitors asking at once for a page nobody has cached yet cause one render, and all fifty get it."""
    inner = SlowInner()
    app = front(inner)
    answers = asyncio.run(burst(app, 50))
    assert inner.calls == 1
    assert answers == [(200, PAGE + b"1")] * 50


def test_a_burst_behind_a_private_answer_renders_its_own(front):
    """When the first render of a burst is not a public page (it sets a cookie), the others are not given it."""
    inner = SlowInner(headers=[*PUBLIC_HEADERS, (b"set-cookie", b"sessionid=1")])
    app = front(inner)
    answers = asyncio.run(burst(app, 5))
    assert inner.calls == 5
    assert sorted(body for _status, body in answers) == [PAGE + str(n).encode() for n in range(1, 6)]
