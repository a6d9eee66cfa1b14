"""Fixtures for the exhibit tests (no page cache and demo content come from tests/showcase/conftest.py)."""

import pytest
from django.contrib.auth import get_user_model


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_user("booth-staff", password="wide-Cormorant-58-lantern", is_staff=True,
                                                is_superuser=True)  # fmt: skip
    client.force_login(user)
    return client
