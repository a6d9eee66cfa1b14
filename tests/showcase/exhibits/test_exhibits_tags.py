"""Figures written as the sources print them, in the visitor's language."""

from decimal import Decimal

import pytest
from django.utils import translation

from showcase.exhibits.templatetags.exhibits_tags import compact_number, scientific, usd


@pytest.mark.parametrize(
    ("value", "shown"),
    [(2788000, "2.788M"), (30840000, "30.84M"), (147000, "147K"), (Decimal("170000000"), "170M"), (512, "512")],
)
def test_compact_numbers_keep_the_sources_digits(value, shown):
    """Large figures are shortened without losing the digits the source gives."""
    assert compact_number(value) == shown


def test_costs_and_compute():
    """Costs read in dollars and compute as a power of ten."""
    assert usd(Decimal("5576000")) == "$5.576M"
    assert scientific(3.3e24) == "3.3 × 10²⁴"
    assert scientific(3.14e23) == "3.14 × 10²³"


def test_french_uses_a_decimal_comma():
    """In French, 2.788M is written 2,788M."""
    with translation.override("fr"):
        assert compact_number(2788000) == "2,788M"
