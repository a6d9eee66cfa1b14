"""Fixtures for the exhibit tests: no page cache unless a test asks for it, demo content, a staff client."""

import pytest
from django.contrib.auth import get_user_model

from showcase.exhibits import services


@pytest.fixture(autouse=True)
def _no_page_cache(settings):
    """Each test sees its own database; a page cached by an earlier test would not match it."""
    settings.SHOWCASE_PAGE_CACHE_SECONDS = 0


@pytest.fixture
def demo_content(db):
    return services.demo_content_load()


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_user("booth-staff", password="wide-Cormorant-58-lantern", is_staff=True,
                                                is_superuser=True)  # fmt: skip
    client.force_login(user)
    return client
