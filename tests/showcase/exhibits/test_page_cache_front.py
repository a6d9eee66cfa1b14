"""The ASGI layer that replays public pages from Redis without entering Django (PageCacheFront), around a
scripted inner application and the tests' real Redis."""

import asyncio

import pytest

from showcase.exhibits import page_cache
from showcase.exhibits.page_cache import PageCacheFront

PAGE = b"<h1>Exhibitors</h1>"
PUBLIC_HEADERS = [(b"content-type", b"text/html"), (b"x-page-cache", b"miss"), (b"content-security-policy", b"x")]


class Inner:
    """Stands in for Django: counts its calls and answers with the given status and headers."""

    def __init__(self, *, status: int = 200, headers=PUBLIC_HEADERS) -> None:
        self.calls, self.status, self.headers = 0, status, headers

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": PAGE + str(self.calls).encode()})


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
def front(settings, db):
    settings.SHOWCASE_PAGE_CACHE_SECONDS = 60
    page_cache.content_version()  # the version a first render sets
    page_cache.bump_content_version()  # and nothing left from an earlier test matches it
    return lambda inner: PageCacheFront(inner)


def test_a_public_page_is_replayed_whole_without_entering_django(front):
    inner = Inner()
    app = front(inner)
    first = get(app)
    second = get(app)
    assert inner.calls == 1
    assert second[0] == 200 and second[2] == first[2] == PAGE + b"1"
    assert second[1][b"content-security-policy"] == b"x" and second[1][b"x-page-cache"] == b"front"


def test_a_content_change_is_shown_at_once(front):
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
    app = front(inner)
    get(app)
    get(app)
    assert inner.calls == 2


def test_each_host_path_and_query_is_its_own_entry(front):
    inner = Inner()
    app = front(inner)
    get(app)
    get(app, host=b"evil.example")
    get(app, path="/fr/exhibitors/")
    get(app, query=b"country=China")
    assert inner.calls == 4


def test_other_methods_and_private_paths_pass_through(front):
    inner = Inner()
    app = front(inner)
    for _ in range(2):
        get(app, method="HEAD")
        get(app, method="POST")
        get(app, path="/admin/")
    assert inner.calls == 6


def test_with_redis_unreachable_every_request_reaches_django(front, settings):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    inner = Inner()
    app = front(inner)
    assert get(app)[0] == 200 and get(app)[0] == 200
    assert inner.calls == 2
