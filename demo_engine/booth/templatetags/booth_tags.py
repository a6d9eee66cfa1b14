from django import template
from django.utils import translation

from demo_engine.booth import selectors

register = template.Library()


@register.simple_tag
def suggested_questions() -> list[str]:
    """The questions staff suggest in the page's language (the chat shows them as buttons)."""
    return selectors.suggested_question_list(language=translation.get_language() or "en")
