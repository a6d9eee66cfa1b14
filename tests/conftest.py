"""Fixtures shared by every test package."""

import pytest

from tests.stack import LiveStack


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory):
    """The real site (ASGI server + Celery worker + Redis), started once per test session."""
    stack = LiveStack(tmp_dir=tmp_path_factory.mktemp("live-stack")).start()
    yield stack
    stack.stop()


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """In-process tests render templates without running collectstatic first (no hashed manifest)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
