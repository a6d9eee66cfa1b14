"""Fixtures of the live-page tests: demo content, and no page cache (each test has its own database)."""

import pytest

from showcase.exhibits import services


@pytest.fixture(autouse=True)
def _no_page_cache(settings):
    settings.SHOWCASE_PAGE_CACHE_SECONDS = 0


@pytest.fixture
def demo_content(db):
    return services.demo_content_load()
