"""The deployment's Redis namespace: taken from the database (a reset database gets a new one) unless configured."""

import pytest

from showcase.core import shared_redis
from showcase.core.models import SiteIdentity


@pytest.fixture
def prefix_from_database(settings):
    settings.SHOWCASE_REDIS_PREFIX = ""
    shared_redis.forget_prefix()
    yield
    shared_redis.forget_prefix()


def test_the_prefix_comes_from_the_sites_identity(db, prefix_from_database):
    """Without SHOWCASE_REDIS_PREFIX the namespace is the site id the database holds (made by the migration)."""
    identity = SiteIdentity.objects.get()
    assert shared_redis.redis_prefix() == f"waic:{identity.site_id.hex[:12]}:"


def test_a_reset_database_gets_another_namespace(db, prefix_from_database):
    """A database reset (its identity row made anew) gives a new namespace: keys an old site left are not read."""
    before = shared_redis.redis_prefix()
    SiteIdentity.objects.all().delete()
    SiteIdentity.objects.create()
    shared_redis.forget_prefix()
    assert shared_redis.redis_prefix() != before


def test_a_configured_prefix_wins(settings):
    """SHOWCASE_REDIS_PREFIX names the namespace outright (a colon is added)."""
    settings.SHOWCASE_REDIS_PREFIX = "booth-a"
    shared_redis.forget_prefix()
    try:
        assert shared_redis.key("reply", 6) == "booth-a:reply:6"
    finally:
        shared_redis.forget_prefix()


def test_celery_and_the_channel_layer_use_the_namespace(settings):
    """Celery's broker connections and the Channels layer's groups live under the same prefix."""
    from channels.layers import get_channel_layer

    from showcase.celery import app

    settings.SHOWCASE_REDIS_PREFIX = "booth-a"
    shared_redis.forget_prefix()
    try:
        connection = app.connection_for_write()
        assert connection.transport_options["global_keyprefix"] == "booth-a:"
        connection.release()
        assert shared_redis.NamespacedRedisChannelLayer(hosts=[settings.REDIS_URL]).prefix == "booth-a:asgi"
        assert get_channel_layer() is not None
    finally:
        shared_redis.forget_prefix()
