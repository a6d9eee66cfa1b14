"""`Authorization: Bearer <key>` for the HTTP API: the key's row, or a 401 in OpenAI's format."""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.http import HttpRequest

from demo_engine.api import selectors
from demo_engine.api.wire import ApiError
from demo_engine.models import ApiKey


def bearer_secret(request: HttpRequest) -> str | None:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


async def authenticate(request: HttpRequest) -> ApiKey:
    """The active API key of the request; ApiError(401) when it is missing, unknown or revoked."""
    secret = bearer_secret(request)
    if secret is None:
        raise ApiError(401, "You didn't provide an API key: send 'Authorization: Bearer <key>'.",
                       code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    api_key = await database_sync_to_async(selectors.api_key_by_secret)(secret=secret)
    if api_key is None:
        shown = secret[: selectors.VISIBLE_PREFIX_CHARS]
        raise ApiError(401, f"Incorrect API key provided: {shown}…. Ask the booth's staff for a key.",
                       code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    return api_key
