"""Fixtures shared by the content and live-page tests."""

import pytest

from showcase.exhibits import services


@pytest.fixture(autouse=True)
def _no_page_cache(settings):
    """Each test sees its own database; a page cached by an earlier test would not match it."""
    settings.SHOWCASE_PAGE_CACHE_SECONDS = 0


@pytest.fixture
def demo_content(db):
    """The conference, AI systems, hardware and examples of the demo fixture."""
    return services.demo_content_load()
