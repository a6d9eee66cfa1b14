"""The content filter of a public screen: staff's blocked words and phrases (`BlockedPhrase`, per language).

- A visitor's message that contains one is refused before anything is saved or generated (`message_check`, an
  admission guard raising `admission.Refused`), politely and in the visitor's language.
- A reply that produces one is cut where the phrase begins (`ReplyFilter`, used by the worker's reply writer) and
  ends `stopped` with a reason staff can read; the conversation is flagged for staff either way.

Matching ignores case and width (NFKC for a visitor's text); a phrase that begins or ends with a Latin letter or
digit matches only as a whole word there ("con" blocks "con" and "CON!", not "contest"); Chinese phrases match
anywhere. Phrases tagged with no language apply to every conversation.
"""

from __future__ import annotations

import re
import unicodedata

from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext

from demo_engine.admission import Refused
from demo_engine.models import BlockedPhrase, Conversation

REPLY_CUT_CODE = "blocked_phrase"
REPLY_CUT_REASON = "Cut by the content filter: the reply contained a blocked phrase."


def _edge(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _pattern(phrase: str) -> str:
    phrase = unicodedata.normalize("NFKC", phrase).strip()
    body = r"\s+".join(re.escape(word) for word in phrase.split())
    before = r"(?<![A-Za-z0-9])" if _edge(phrase[0]) else ""
    after = r"(?![A-Za-z0-9])" if _edge(phrase[-1]) else ""
    return before + body + after


def blocked_phrases(*, language: str | None) -> list[str]:
    """The phrases that apply to a conversation in `language` (those of every language, and its own)."""
    languages = Q(language="")
    if language:
        languages |= Q(language=language)
    return [phrase for phrase in BlockedPhrase.objects.filter(languages).values_list("phrase", flat=True) if
            phrase.strip()]  # fmt: skip


def phrases_regex(phrases: list[str]) -> re.Pattern | None:
    """One pattern for all the phrases, longest first (so the longer of two overlapping phrases is reported)."""
    phrases = sorted({phrase.strip() for phrase in phrases if phrase.strip()}, key=len, reverse=True)
    if not phrases:
        return None
    return re.compile("|".join(f"(?:{_pattern(phrase)})" for phrase in phrases), re.IGNORECASE)


def conversation_flag(*, conversation: Conversation, reason: str) -> None:
    """Mark the conversation for staff (the first reason is kept: it is the one that matters)."""
    Conversation.objects.filter(pk=conversation.pk, flagged_at__isnull=True).update(
        flagged_at=timezone.now(), flag_reason=reason[:200]
    )


def message_check(*, text: str, language: str | None, conversation: Conversation | None) -> None:
    """Refuse a visitor's message that contains a blocked phrase; nothing is saved and nothing is generated."""
    pattern = phrases_regex(blocked_phrases(language=language))
    if pattern is None:
        return
    found = pattern.search(unicodedata.normalize("NFKC", text))
    if found is None:
        return
    if conversation is not None:
        conversation_flag(conversation=conversation, reason=f"Visitor's message refused: {found.group()!r}")
    with translation.override(language or "en"):
        message = gettext("Sorry, this screen cannot answer that message. Please rephrase it and try again.")
    raise Refused("blocked_phrase", message)


class ReplyFilter:
    """Finds where a reply must be cut while it is generated. The writer holds back `hold_back` characters, so
    that a phrase is known whole (and a whole word is known to end) before any of it reaches a client."""

    def __init__(self, phrases: list[str]) -> None:
        self.pattern = phrases_regex(phrases)
        # The longest phrase, plus one character to see that a word has ended ("ass" is not "assistant").
        self.hold_back = max((len(phrase.strip()) for phrase in phrases if phrase.strip()), default=0) + 1
        self.found: str | None = None

    @classmethod
    def for_conversation(cls, conversation: Conversation) -> ReplyFilter:
        return cls(blocked_phrases(language=conversation.language or None))

    def cut_at(self, text: str, *, final: bool) -> int | None:
        """Where `text` must end, or None. Before the reply's end, a match that reaches the end of the text is not
        decided yet (the next token may continue the word)."""
        if self.pattern is None:
            return None
        for found in self.pattern.finditer(text):
            if final or found.end() < len(text):
                self.found = found.group()
                return found.start()
        return None
