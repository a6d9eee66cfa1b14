"""Template filters of the comparison: ranges, multiples and percentages written for the visitor's language."""

from decimal import Decimal

from django import template
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from showcase.exhibits.templatetags.exhibits_tags import compact_number, usd

register = template.Library()


@register.filter
def usd_range(value: tuple[Decimal, Decimal] | None) -> str:
    """($2M, $5M) → "$2M–$5M"; a range of one value → "$5.576M"."""
    if not value:
        return ""
    low, high = value
    return usd(low) if low == high else f"{usd(low)}–{usd(high)}"


def _multiple(value: Decimal) -> str:
    places = 2 if value < 100 else 0
    return f"{number_format(value.quantize(Decimal(1).scaleb(-places)), places, force_grouping=True)}×"


@register.filter
def times(value: tuple[Decimal, Decimal] | None) -> str:
    """A ratio range as multiples: (11.06…, 11.06…) → "11.06×"; (0.4, 2.5) → "0.40×–2.50×"."""
    if not value:
        return ""
    low, high = value
    return _multiple(low) if low == high else f"{_multiple(low)}–{_multiple(high)}"


@register.filter
def percent(value: Decimal | None) -> str:
    """0.3324 → "33%" ("33 %" is left to the language files only where they say so)."""
    if value is None:
        return ""
    return f"{number_format((value * 100).quantize(Decimal(1)), 0)}%"


@register.filter
def price(value: Decimal | None) -> str:
    """2 → "2.00" (fr "2,00"): an hourly price, always with cents."""
    return "" if value is None else number_format(Decimal(value), 2, force_grouping=True)


@register.filter
def get_row(rows: dict, key: str):
    """One figure row of a system by its key (`rows|get_row:"gpu_hours"`), or None."""
    return rows.get(key)


@register.filter
def grouped(value: int | None) -> str:
    """16384 → "16,384" (fr "16 384"): a count of chips, written in full."""
    return "" if value is None else number_format(value, force_grouping=True)


@register.filter
def billions(value: Decimal | None) -> str:
    """37 → "37B", 0.135 → "0.135B": parameters in billions, as the sources write them."""
    if value is None:
        return "–"
    return f"{number_format(Decimal(value).normalize(), force_grouping=True)}B"


PRECISION_NAMES = {"fp8": "FP8", "bf16": "BF16", "fp16": "FP16", "16bit": gettext_lazy("16-bit")}


@register.simple_tag
def price_basis(item, settings) -> str:
    """How a system's cost at your price was computed, in words: its own hours, or hours from compute at the assumed
    utilisation, times one price or its chip's own price ("2.788M GPU-hours × $2.00 per H800-hour")."""
    price = usd_price(item.price_usd)
    chip = item.hardware.name if item.hardware is not None else ""
    per = (
        (_("per %(chip)s-hour, the chip’s own price") % {"chip": chip})
        if item.price_is_chips_own
        else _("per chip-hour")
    )
    if item.cost_basis == "gpu_hours":
        return _("its %(hours)s GPU-hours × %(price)s %(per)s") % {
            "hours": compact_number(item.chip_hours), "price": price, "per": per}  # fmt: skip
    if item.cost_basis == "compute":
        return _("compute ÷ (%(peak)s TFLOP/s %(precision)s × %(util)s%%) × %(price)s %(per)s") % {
            "peak": number_format(item.peak_tflops.normalize(), force_grouping=True),
            "precision": str(PRECISION_NAMES.get(item.peak_precision, "")), "util": settings.utilisation_percent,
            "price": price,
            "per": per,
        }  # fmt: skip
    return ""


def usd_price(value: Decimal | None) -> str:
    return "" if value is None else f"${price(value)}"
