"""Continue on your phone: a single-use link that moves a conversation from one browser session to another.

The link's secret lives only in the link (Redis keeps its SHA-256, under this deployment's namespace) and expires
after `HANDOVER_TTL_S`. Redeeming it is one GETDEL, so two phones racing for one link cannot both win. The
conversation is moved, not shared: its `session_key` becomes the phone's, so the session that handed it over (the
kiosk's) no longer finds it, and any other link issued for it earlier is refused (it names the old session).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from django.db import transaction

from demo_engine import selectors
from demo_engine.models import Conversation
from showcase.core import shared_redis

HANDOVER_TTL_S = 180
# How long a redeemed or expired link still answers "already used" (410) rather than "no such link" (404).
USED_MARKER_TTL_S = 3600


class HandoverGone(Exception):
    """The link was used already, or the conversation it names has moved on."""


@dataclass(frozen=True)
class Handover:
    token: str  # the secret, only ever in the link
    public_id: str  # names the handover to the screen that asked for it (its status), never redeems it
    expires_in_s: int


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token_key(token: str) -> str:
    return shared_redis.key("handover", "token", _digest(token))


def _used_key(public_id: str) -> str:
    return shared_redis.key("handover", "used", public_id)


def _issued_key(token: str) -> str:
    return shared_redis.key("handover", "issued", _digest(token))


def handover_create(*, conversation: Conversation) -> Handover:
    """A fresh single-use link for the conversation, valid for `HANDOVER_TTL_S` seconds."""
    token, public_id = secrets.token_urlsafe(24), secrets.token_urlsafe(12)
    record = json.dumps({"conversation_id": str(conversation.id), "session_key": conversation.session_key,
                         "public_id": public_id})  # fmt: skip
    pipe = shared_redis.client().pipeline(transaction=True)
    pipe.set(_token_key(token), record, ex=HANDOVER_TTL_S)
    # Remembers that this link existed, for longer, so a second scan says "used or expired" rather than 404.
    pipe.set(_issued_key(token), public_id, ex=HANDOVER_TTL_S + USED_MARKER_TTL_S)
    pipe.execute()
    return Handover(token=token, public_id=public_id, expires_in_s=HANDOVER_TTL_S)


def handover_redeem(*, token: str, session_key: str) -> Conversation | None:
    """Move the link's conversation to `session_key`. None for a link that never existed; `HandoverGone` for one
    used already, expired, or whose conversation left the session that issued it."""
    client = shared_redis.client()
    raw = client.getdel(_token_key(token))
    if raw is None:
        if client.exists(_issued_key(token)):
            raise HandoverGone()
        return None
    record = json.loads(raw)
    client.set(_used_key(record["public_id"]), "1", ex=USED_MARKER_TTL_S)
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update()
            .filter(id=record["conversation_id"], session_key=record["session_key"])
            .first()
        )
        if conversation is None:
            raise HandoverGone()
        conversation.session_key = session_key
        conversation.save(update_fields=["session_key", "updated_at"])
    return conversation


def handover_used(*, public_id: str) -> bool:
    """Whether the handover named `public_id` has been redeemed (the screen that showed it then clears itself)."""
    return bool(shared_redis.client().exists(_used_key(public_id)))


def conversation_of_session(*, session_key: str | None, conversation_id: str | None) -> Conversation | None:
    if not session_key:
        return None
    return selectors.conversation_get(conversation_id=conversation_id, session_key=session_key)
