"""Reads of the kiosk: the screen behind a secret, and what its attract loop shows."""

from __future__ import annotations

import logging

from django.apps import apps
from django.utils import translation
from django.utils.translation import gettext

from demo_engine.models import Conversation
from showcase.kiosk.models import KioskScreen

logger = logging.getLogger(__name__)


def kiosk_screen_get(*, secret: str) -> KioskScreen | None:
    """The active screen with this secret; None for a wrong or revoked one (the views answer 404)."""
    if not secret:
        return None
    return KioskScreen.objects.filter(secret=secret, revoked_at__isnull=True).first()


def _default_questions() -> list[str]:
    return [
        gettext("How much did it cost to train DeepSeek-V3?"),
        gettext("How many GPUs were used to train Llama 3.1 405B?"),
        gettext("What is an H800?"),
        gettext("Which start-ups are pitching today?"),
    ]


# Where the booth assistant's suggested questions may live (another part of the site manages them in the admin, per
# language). Read defensively: the model, or any of these fields, may not exist in this version of the site.
SUGGESTED_QUESTION_MODELS = (("demo_engine", "SuggestedQuestion"), ("showcase.exhibits", "SuggestedQuestion"))


def suggested_questions(*, language: str, limit: int = 6) -> list[str]:
    """The suggested questions staff publish for `language`; the kiosk's own few when there are none (or when the
    suggested questions are not part of this site)."""
    for app_label, model_name in SUGGESTED_QUESTION_MODELS:
        try:
            model = apps.get_model(app_label.rsplit(".", 1)[-1], model_name)
        except LookupError:
            continue
        fields = {field.name for field in model._meta.get_fields()}
        text_field = next((name for name in ("text", "question", "title") if name in fields), None)
        if text_field is None:
            continue
        try:
            queryset = model.objects.all()
            if "language" in fields:
                queryset = queryset.filter(language__in=[language, ""])
            for flag in ("is_published", "published", "is_active", "active"):
                if flag in fields:
                    queryset = queryset.filter(**{flag: True})
                    break
            if "status" in fields:
                queryset = queryset.filter(status="published")
            questions = [text for text in queryset.values_list(text_field, flat=True)[:limit] if text]
        except Exception:  # a schema this function does not know: the defaults are better than no kiosk
            logger.warning("could not read the suggested questions", exc_info=True)
            continue
        if questions:
            return questions
    with translation.override(language):
        return _default_questions()[:limit]


def recent_questions(*, screen: KioskScreen, limit: int = 5) -> list[str]:
    """Questions recently asked at this screen, for its attract loop: never a hidden or a flagged conversation."""
    conversations = Conversation.objects.filter(kiosk_screen=screen, hidden_from_kiosk=False,
                                                flagged_at__isnull=True).exclude(title="")  # fmt: skip
    return list(conversations.order_by("-created_at").values_list("title", flat=True)[:limit])


def attract_comparison(*, limit: int = 6) -> list:
    """The live comparison's systems (sourced figures, DeepSeek highlighted), for the attract loop's table."""
    from showcase.live.selectors import comparison_page

    return comparison_page(query={}).systems[:limit]
