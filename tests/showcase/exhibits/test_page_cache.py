"""Cached public pages: served from the cache until content changes, then fresh at once."""

import pytest
from django.core.cache import cache

from showcase.exhibits import services
from showcase.exhibits.models import Exhibitor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def page_cache(settings):
    settings.SHOWCASE_PAGE_CACHE_SECONDS = 60
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "exhibits-page-cache-test"}}  # fmt: skip
    cache.clear()
    yield
    cache.clear()


def test_second_visit_is_served_from_the_cache_without_queries(client, page_cache, django_assert_num_queries):
    """A page seen once is served again without touching the database."""
    services.demo_content_load()
    assert client.get("/exhibitors/")["X-Page-Cache"] == "miss"
    with django_assert_num_queries(0):
        response = client.get("/exhibitors/")
    assert response["X-Page-Cache"] == "hit" and b"Huangpu Robotics" in response.content


def test_an_admin_save_shows_at_once(client, page_cache):
    """After an exhibitor is renamed, the next visit shows the new name, not the cached page."""
    services.demo_content_load()
    client.get("/exhibitors/")
    exhibitor = Exhibitor.objects.get(slug="huangpu-robotics")
    exhibitor.name = "Huangpu Robotics Group"
    exhibitor.save()
    response = client.get("/exhibitors/")
    assert response["X-Page-Cache"] == "miss" and b"Huangpu Robotics Group" in response.content


def test_each_language_and_query_is_cached_apart(client, page_cache):
    """The French page and a filtered page are not served the English or unfiltered one."""
    services.demo_content_load()
    client.get("/exhibitors/")
    assert "Exposants" in client.get("/fr/exhibitors/").content.decode()
    assert "Bay Devices" not in client.get("/exhibitors/?country=China").content.decode()
