"""Writes of the kiosk: screens, a fresh session for the next visitor, the 'continue on your phone' link."""

from __future__ import annotations

from dataclasses import dataclass

import segno
from django.contrib.sessions.backends.base import SessionBase
from django.utils import timezone

from demo_engine import handover
from demo_engine.models import Conversation
from showcase.kiosk.models import KioskScreen, new_secret

SESSION_SCREEN_KEY = "kiosk_screen_id"


def kiosk_screen_create(
    *, name: str, idle_seconds: int = 90, qr_enabled: bool = True, attract_slide_seconds: int = 12
) -> KioskScreen:
    screen = KioskScreen(name=name, idle_seconds=idle_seconds, qr_enabled=qr_enabled,
                         attract_slide_seconds=attract_slide_seconds)  # fmt: skip
    screen.full_clean()
    screen.save()
    return screen


def kiosk_screen_revoke(*, screen: KioskScreen) -> None:
    """The screen's URL answers 404 from now on."""
    if screen.revoked_at is None:
        screen.revoked_at = timezone.now()
        screen.save(update_fields=["revoked_at"])


def kiosk_screen_rotate_secret(*, screen: KioskScreen) -> KioskScreen:
    """A new secret URL for the screen (the old one answers 404), e.g. after it was shown on a photo."""
    screen.secret = new_secret()
    screen.save(update_fields=["secret"])
    return screen


def kiosk_session_attach(*, session: SessionBase, screen: KioskScreen) -> None:
    """Mark the browser session as this screen's: conversations it starts are recorded as the screen's."""
    if session.get(SESSION_SCREEN_KEY) != screen.id:
        session[SESSION_SCREEN_KEY] = screen.id
    if not session.session_key or session.modified:
        session.save()


def kiosk_session_reset(*, session: SessionBase, screen: KioskScreen) -> None:
    """The next visitor's session: the old one is deleted and the browser gets a new session key, so nothing on
    the screen can reach the previous conversation again (conversations belong to a session key)."""
    session.flush()
    session[SESSION_SCREEN_KEY] = screen.id
    session.save()


@dataclass(frozen=True)
class HandoverOffer:
    url: str
    qr_data_uri: str
    public_id: str
    expires_in_s: int


def kiosk_handover_offer(*, conversation: Conversation, url_for_token) -> HandoverOffer:
    """A single-use link to the conversation and its QR code, drawn here as SVG (no outside service)."""
    offer = handover.handover_create(conversation=conversation)
    url = url_for_token(offer.token)
    qr = segno.make(url, error="m")
    return HandoverOffer(url=url, qr_data_uri=qr.svg_data_uri(scale=6, border=2, dark="#111", light="#fff"),
                         public_id=offer.public_id, expires_in_s=offer.expires_in_s)  # fmt: skip
