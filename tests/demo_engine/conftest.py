"""Fixtures of the chat's in-process tests."""

import pytest
import redis
from django.conf import settings


@pytest.fixture(autouse=True)
def _empty_test_redis():
    """Each test starts with an empty test Redis database: message ids restart with the test database, and a
    stream left by an earlier test under the same id would be read as this test's."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    client.close()
