"""Staff manage API keys in the admin: a new key is shown once, keys are revoked (never deleted)."""

import re

import pytest
from django.contrib.auth import get_user_model

from demo_engine.api import selectors, services
from demo_engine.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user("booth-staff", password="wide-Cormorant-58-lantern", is_staff=True,
                                                is_superuser=True)  # fmt: skip
    client.force_login(user)
    return client


def test_adding_a_key_shows_its_secret_once(staff_client):
    """Saving a new key shows the secret in a message on the next page only; the secret works and is not stored."""
    response = staff_client.post("/admin/demo_engine/apikey/add/", {"name": "team 7", "requests_per_minute": "30",
                                 "usage-TOTAL_FORMS": "0", "usage-INITIAL_FORMS": "0"}, follow=True)  # fmt: skip
    page = response.content.decode()
    secret = re.search(r"sk-waic-[\w-]+", page).group(0)
    api_key = selectors.api_key_by_secret(secret=secret)
    assert api_key is not None and api_key.name == "team 7" and api_key.requests_per_minute == 30
    again = staff_client.get(f"/admin/demo_engine/apikey/{api_key.id}/change/").content.decode()
    assert secret not in again and api_key.prefix in again


def test_revoking_keys_from_the_list(staff_client):
    """The "revoke" action turns the selected keys off; the others still work."""
    revoked, revoked_secret = services.api_key_create(name="old")
    kept, kept_secret = services.api_key_create(name="current")
    staff_client.post("/admin/demo_engine/apikey/", {"action": "revoke", "_selected_action": [revoked.id]})
    assert selectors.api_key_by_secret(secret=revoked_secret) is None
    assert selectors.api_key_by_secret(secret=kept_secret) == kept
    assert ApiKey.objects.filter(id=revoked.id).exists()
