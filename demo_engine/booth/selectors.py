"""Reads of the booth assistant that pages need (the search itself is in `retrieval`, which runs in workers)."""

from demo_engine.booth.models import SuggestedQuestion

SUGGESTED_SHOWN = 6


def suggested_question_list(*, language: str) -> list[str]:
    """The shown suggested questions of `language` ("fr", "zh-hans", anything else is English), in order."""
    language = language.lower()
    if language not in {choice for choice, _label in SuggestedQuestion.Language.choices}:
        language = language.split("-")[0] if language.startswith(("fr", "en")) else "en"
    return list(
        SuggestedQuestion.objects.filter(language=language, is_active=True).values_list("text", flat=True)[
            :SUGGESTED_SHOWN
        ]
    )
