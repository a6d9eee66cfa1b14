"""The `/v1/` views in-process, through Django's ASGI handler and every middleware: answers a client can rely on
before any generation starts."""

import json

import pytest
from django.test import AsyncClient

from demo_engine.api import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def secret() -> str:
    return services.api_key_create(name="views")[1]


async def test_a_body_over_the_upload_limit_is_a_413_in_openais_format(secret, settings):
    """A request body over Django's upload limit is refused with 413 in OpenAI's error format (not an HTML page)."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "x" * 2000}]})
    response = await AsyncClient().post("/v1/chat/completions", body, content_type="application/json",
                                        headers={"Authorization": f"Bearer {secret}"})  # fmt: skip
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


async def test_the_api_needs_no_csrf_token_and_answers_the_wrong_method_with_405(secret):
    """A POST without a CSRF token reaches the API (keys, not cookies, authenticate); GET on completions is a 405."""
    client = AsyncClient(enforce_csrf_checks=True)
    response = await client.post("/v1/chat/completions", "{}", content_type="application/json",
                                 headers={"Authorization": f"Bearer {secret}"})  # fmt: skip
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"
    wrong = await client.get("/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"})
    assert wrong.status_code == 405 and wrong["Allow"] == "POST"
