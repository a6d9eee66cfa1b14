"""Reads of the HTTP API: API keys by their secret, and what a key has used. No writes here (see services)."""

from __future__ import annotations

import hashlib

from django.db.models import Sum

from demo_engine.models import ApiKey, ApiUsage

KEY_PREFIX = "sk-waic-"
VISIBLE_PREFIX_CHARS = 12  # "sk-waic-" and four characters of the secret


def key_hash(secret: str) -> str:
    """The SHA-256 of a key, as stored. A key is 256 random bits, so a plain hash (no salt, no stretching) is
    enough: there is no dictionary to try against it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_by_secret(*, secret: str) -> ApiKey | None:
    """The active key whose secret this is, or None (unknown or revoked)."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    return ApiKey.objects.filter(key_hash=key_hash(secret), revoked_at__isnull=True).first()


def api_usage_totals(*, api_key: ApiKey) -> dict[str, int]:
    """Everything the key has used: completions accepted, prompt and completion tokens."""
    totals = ApiUsage.objects.filter(api_key=api_key).aggregate(
        requests=Sum("requests"), prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens")
    )
    return {name: value or 0 for name, value in totals.items()}
