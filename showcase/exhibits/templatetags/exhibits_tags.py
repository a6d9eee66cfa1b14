"""Template helpers for the exhibit pages: figures written the way a visitor reads them, and language links."""

from decimal import Decimal

from django import template
from django.http import HttpRequest
from django.urls import translate_url
from django.utils.formats import number_format
from django.utils.translation import gettext as _

register = template.Library()

SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _compact(value: float | Decimal | int) -> str:
    """2788000 → "2.788M", 294000 → "294K", 170000000 → "170M" (decimal separator of the visitor's language)."""
    number = float(value)
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(number) >= threshold:
            scaled = number / threshold
            # Keep what the sources print (2.788M GPU-hours, 30.84M, 170M), not a rounder number.
            digits = 3 if scaled < 10 else (2 if scaled < 100 else 0)
            shown = Decimal(repr(round(scaled, digits)))
            shown = Decimal(format(shown.normalize(), "f"))
            return f"{number_format(shown)}{suffix}"
    return number_format(int(number), use_l10n=True, force_grouping=True)


@register.filter
def compact_number(value: float | Decimal | int | None) -> str:
    return "" if value is None else _compact(value)


@register.filter
def usd(value: Decimal | int | None) -> str:
    return "" if value is None else f"${_compact(value)}"


@register.filter
def scientific(value: float | None) -> str:
    """3.3e24 → "3.3 × 10²⁴"."""
    if value is None:
        return ""
    mantissa, exponent = f"{value:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{number_format(Decimal(mantissa))} × 10{str(int(exponent)).translate(SUPERSCRIPT)}"


@register.filter
def figure_value(row) -> str:
    """The value of one figure row (see selectors.FigureRow), or "" when the figure is unknown."""
    if row.value is None or row.value == "":
        return ""
    if row.key == "training_cost":
        low, high = row.value
        return usd(low) if low == high else f"{usd(low)}–{usd(high)}"
    if row.key == "gpu_hours":
        return compact_number(row.value)
    if row.key == "training_compute":
        return f"{scientific(row.value)} FLOP"
    if row.key == "chips":
        return number_format(row.value, force_grouping=True)
    return str(row.value)


@register.simple_tag
def language_links(request: HttpRequest) -> list[dict]:
    """The current page in each language the site speaks: a plain link per language (no form, no JavaScript),
    through `language_choose`, which remembers the choice so that unprefixed pages stop following Accept-Language."""
    from urllib.parse import urlencode

    from django.conf import settings
    from django.urls import reverse
    from django.utils.translation import get_language

    current = get_language()
    path = request.get_full_path() if request is not None else "/"
    return [
        {"code": code, "name": name, "current": code == current,
         "url": reverse("language_choose", args=[code]) + "?" + urlencode({"next": translate_url(path, code)})}
        for code, name in settings.LANGUAGES
    ]  # fmt: skip


@register.simple_tag
def unknown_label() -> str:
    return _("not disclosed")
