"""Which rendered pages the page cache may keep: public pages with canonical URLs only; a content save moves the
version every cached page is checked against."""

import pytest

from showcase.exhibits import page_cache, services
from showcase.exhibits.models import Exhibitor
from showcase.exhibits.page_cache import canonical_query

pytestmark = pytest.mark.django_db(transaction=True)


def test_public_pages_with_known_parameters_are_marked_cacheable(client):
    """The directory, with the filters it reads, and the comparison, with its own, are marked for the front cache."""
    services.demo_content_load()
    assert client.get("/exhibitors/")["X-Page-Cache"] == "miss"
    assert client.get("/fr/exhibitors/?page=2&country=China")["X-Page-Cache"] == "miss"
    assert client.get("/compare/?a=deepseek-v3&b=gpt-4&util=40")["X-Page-Cache"] == "miss"


@pytest.mark.parametrize(
    "url",
    ["/compare/?junk=8f2a", "/exhibitors/?country=China&country=France", "/?utm_source=x", "/exhibitors/?q=a&x=1"],
)
def test_pages_with_unknown_or_repeated_parameters_are_never_cacheable(client, url):
    """A URL with a parameter the view does not read, or one given twice, is rendered but never marked cacheable,
    so random query strings cannot fill Redis."""
    services.demo_content_load()
    response = client.get(url)
    assert response.status_code == 200 and "X-Page-Cache" not in response


def test_canonical_query_ignores_order_only():
    """The same known parameters in another order are one page; anything else is not canonical."""
    allowed = frozenset({"q", "page"})
    assert canonical_query("page=2&q=robots", allowed) == canonical_query("q=robots&page=2", allowed) != ""
    assert canonical_query("", allowed) == ""
    assert canonical_query("q=1&q=2", allowed) is None
    assert canonical_query("q=1&utm=2", allowed) is None


def test_an_admin_save_moves_the_content_version():
    """Renaming an exhibitor moves the version, so every page stored before it stops being served."""
    services.demo_content_load()
    before = page_cache.content_version()
    exhibitor = Exhibitor.objects.get(slug="huangpu-robotics")
    exhibitor.name = "Huangpu Robotics Group"
    exhibitor.save()
    assert page_cache.content_version() > before


def test_every_key_is_built_by_one_function():
    """The version, the bookkeeping and the page entries all live under the namespace `redis_key` builds."""
    namespace = page_cache.redis_key("")
    keys = [page_cache.version_key(), *page_cache.index_keys(), page_cache.entry_key(b"http|host|/|")]
    assert all(key.startswith(namespace) for key in keys)
