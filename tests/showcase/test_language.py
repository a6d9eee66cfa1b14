"""Visitors land in their language: unprefixed pages follow Accept-Language unless the visitor chose a language
with the switcher, and the front page cache never replays one language's page, or a redirect, to another."""

import asyncio

import pytest

from showcase.core.language import preferred_language
from showcase.exhibits import page_cache
from showcase.exhibits.page_cache import PageCacheFront


@pytest.mark.parametrize(
    ("accept", "cookie", "expected"),
    [
        ("fr-FR,fr;q=0.9,en;q=0.8", None, "fr"),
        ("zh-CN,zh;q=0.9", None, "zh-hans"),
        ("zh-Hans-CN", None, "zh-hans"),
        ("de-DE,fr;q=0.5", None, "fr"),  # the first language the site speaks
        ("de-DE", None, "en"),
        ("", None, "en"),
        ("fr-FR", "en", "en"),  # a choice wins over the browser
        ("en-US", "zh-hans", "zh-hans"),
        ("fr", "klingon", "fr"),  # a cookie the site cannot speak is ignored
    ],
)
def test_the_visitors_language(accept, cookie, expected):
    """The chosen language first, then the browser's first one the site speaks, then English."""
    assert preferred_language(cookie=cookie, accept_language=accept) == expected


@pytest.mark.parametrize(("accept", "target"), [("fr-FR,fr;q=0.9", "/fr/"), ("zh-CN,zh;q=0.9", "/zh-hans/")])
def test_home_redirects_a_french_or_chinese_browser(client, db, accept, target):
    """`/` sends a French browser to /fr/ and a Chinese one to /zh-hans/, in a response no cache keeps."""
    response = client.get("/", HTTP_ACCEPT_LANGUAGE=accept)
    assert response.status_code == 302 and response["Location"] == target
    assert "private" in response["Cache-Control"] and "Accept-Language" in response["Vary"]


def test_every_unprefixed_page_keeps_its_path_and_query(client, demo_content):
    """A deep link keeps its path and query on the way to the visitor's language."""
    response = client.get("/exhibitors/?country=China&page=2", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 302 and response["Location"] == "/fr/exhibitors/?country=China&page=2"


def test_an_english_browser_stays_on_english(client, demo_content):
    """English needs no prefix: an English browser gets `/` itself, in English."""
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9")
    assert response.status_code == 200 and response["Content-Language"] == "en"


def test_a_chosen_language_is_remembered(client, demo_content):
    """Choosing English on the switcher keeps a French browser on English pages from then on."""
    response = client.get("/i18n/language/en/?next=/exhibitors/", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 302 and response["Location"] == "/exhibitors/"
    assert response.cookies["django_language"].value == "en"
    page = client.get("/exhibitors/", HTTP_ACCEPT_LANGUAGE="fr")
    assert page.status_code == 200 and page["Content-Language"] == "en"


def test_the_switcher_never_sends_a_visitor_off_site(client, db):
    """A `next` that points to another site is replaced by the home page."""
    response = client.get("/i18n/language/fr/?next=https://evil.example/")
    assert response["Location"] == "/"
    assert client.get("/i18n/language/xx/").status_code == 404


def test_paths_outside_the_language_prefixes_are_not_redirected(client, db):
    """Health checks and the admin answer where they are, whatever the browser's language."""
    assert client.get("/healthz/live", HTTP_ACCEPT_LANGUAGE="fr").status_code == 200
    assert client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="fr").status_code == 200


def http_get(app, path: str, headers: list[tuple[bytes, bytes]]):
    scope = {"type": "http", "method": "GET", "scheme": "http", "path": path, "query_string": b"",
             "headers": [(b"host", b"127.0.0.1:8000"), *headers]}  # fmt: skip
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


class LanguageAwareInner:
    """Stands in for Django behind the front cache: English pages for English browsers, a redirect otherwise."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope, receive, send) -> None:
        from showcase.core.language import language_of_scope

        self.calls += 1
        language = language_of_scope(scope)
        if language != "en":
            await send({"type": "http.response.start", "status": 302,
                        "headers": [(b"location", f"/{language}/".encode())]})  # fmt: skip
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [(b"content-type", b"text/html"), (b"x-page-cache", b"miss"), (b"content-language", b"en")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"<h1>Welcome</h1>"})


def test_front_cache_keeps_languages_apart(settings, db):
    """The front cache serves its cached English page to English browsers only: a French browser gets its redirect
    (every time), and a French browser that chose English gets English."""
    settings.SHOWCASE_PAGE_CACHE_SECONDS = 60
    page_cache.content_version()
    page_cache.bump_content_version()
    inner = LanguageAwareInner()
    app = PageCacheFront(inner)
    english = [(b"accept-language", b"en-US,en;q=0.9")]
    french = [(b"accept-language", b"fr-FR,fr;q=0.9")]
    assert http_get(app, "/", english)[0] == 200
    status, headers, body = http_get(app, "/", english)
    assert status == 200 and headers[b"x-page-cache"] == b"front" and inner.calls == 1
    for _ in range(2):
        status, headers, _body = http_get(app, "/", french)
        assert status == 302 and headers[b"location"] == b"/fr/"
    assert inner.calls == 3
    status, headers, _body = http_get(app, "/", [*french, (b"cookie", b"django_language=en")])
    assert status == 200 and headers[b"x-page-cache"] == b"front"
