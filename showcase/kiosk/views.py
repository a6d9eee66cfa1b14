"""The kiosk: one full-screen page per screen, and the small endpoints its script calls. Thin: services decide."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse, translate_url
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from demo_engine import handover
from demo_engine import selectors as chat_selectors
from showcase.kiosk import selectors, services
from showcase.kiosk.models import KioskScreen


def _screen_or_404(secret: str) -> KioskScreen:
    screen = selectors.kiosk_screen_get(secret=secret)
    if screen is None:
        raise Http404
    return screen


@never_cache
@ensure_csrf_cookie
@require_GET
def kiosk_screen(request: HttpRequest, secret: str) -> HttpResponse:
    screen = _screen_or_404(secret)
    services.kiosk_session_attach(session=request.session, screen=screen)
    language = translation.get_language()
    path = request.path
    context = {
        "screen": screen,
        "limits": chat_selectors.chat_limits(),
        "questions": selectors.suggested_questions(language=language),
        "recent": selectors.recent_questions(screen=screen) if screen.attract_recent else [],
        "systems": selectors.attract_comparison() if screen.attract_compare else [],
        "attract_pages": screen.attract_pages,
        "languages": [
            {"code": code, "name": name, "url": translate_url(path, code), "current": code == language}
            for code, name in settings.LANGUAGES
        ],  # fmt: skip
        "demo_hourly_price_usd": settings.DEMO_HOURLY_PRICE_USD,
    }
    return render(request, "kiosk/screen.html", context)


@never_cache
@require_POST
def kiosk_reset(request: HttpRequest, secret: str) -> JsonResponse:
    """The screen went idle: a new session, so the next visitor starts a new conversation."""
    services.kiosk_session_reset(session=request.session, screen=_screen_or_404(secret))
    return JsonResponse({"ok": True})


@never_cache
@require_POST
def kiosk_handover(request: HttpRequest, secret: str) -> JsonResponse:
    """A QR code for 'continue on your phone', for the session's current conversation."""
    screen = _screen_or_404(secret)
    if not screen.qr_enabled:
        raise Http404
    conversation = handover.conversation_of_session(session_key=request.session.session_key,
                                                    conversation_id=request.session.get("conversation_id"))  # fmt: skip
    if conversation is None or not conversation.messages.exists():
        return JsonResponse({"error": "no_conversation"}, status=409)

    def url_for_token(token: str) -> str:
        # The phone picks its own language: the link has no prefix (see showcase.core.language).
        with translation.override(settings.LANGUAGE_CODE):
            path = reverse("chat_continue", kwargs={"token": token})
        base = settings.KIOSK_PUBLIC_BASE_URL
        return base.rstrip("/") + path if base else request.build_absolute_uri(path)

    offer = services.kiosk_handover_offer(conversation=conversation, url_for_token=url_for_token)
    return JsonResponse({"url": offer.url, "qr": offer.qr_data_uri, "id": offer.public_id,
                         "expires_in_s": offer.expires_in_s})  # fmt: skip


@never_cache
@require_GET
def kiosk_handover_status(request: HttpRequest, secret: str, public_id: str) -> JsonResponse:
    _screen_or_404(secret)
    return JsonResponse({"used": handover.handover_used(public_id=public_id)})
