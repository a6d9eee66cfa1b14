"""Fixtures of the booth assistant's tests: the demo content, published and indexed."""

import pytest

from demo_engine.booth import index
from showcase.exhibits import services as content_services


@pytest.fixture
def indexed_demo(db):
    """The demo content (WAIC 2025, 8 exhibitors, 10 AI systems, pitches…) loaded and indexed."""
    content_services.demo_content_load()
    index.index_rebuild()
