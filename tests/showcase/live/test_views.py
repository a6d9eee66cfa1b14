"""The comparison page as served: readable without JavaScript, in three languages, with the URL's settings."""

import json
import re

import pytest


def _data(response) -> dict:
    match = re.search(rb'<script id="compare-data" type="application/json">(.*?)</script>', response.content, re.S)
    return json.loads(match.group(1))


def test_compare_page_carries_every_figure_without_javascript(client, demo_content):
    """The server-rendered table shows each system's figures, sources, disclosed/estimated labels and scope notes."""
    response = client.get("/compare/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('<tr id="system-') == 10
    assert 'class="highlighted" data-system="deepseek-v3"' in html
    assert "$5.576M" in html and "30.84M" in html and "11.06×" in html
    assert "Final training run only; excludes prior research and ablation experiments." in html
    assert "about $6M on about 2,000 NVIDIA H800 GPUs" in html
    assert "no source" not in html
    assert "Cost at $2.00 per chip-hour" in html
    # Scripts come from our origin only: the data is a JSON block, never an inline script.
    assert re.findall(r"<script(?![^>]*(?:src=|type=\"application/json\"))", html) == []


def test_settings_in_the_url_are_kept(client, demo_content):
    """A shared link with a price, utilisation and pair shows those costs and that head-to-head, without JavaScript."""
    response = client.get("/compare/?price=4&util=50&a=gpt-4&b=llama-3-1-405b")
    html = response.content.decode()
    assert "Cost at $4.00 per chip-hour" in html
    assert "$123M" in html  # Llama 3.1 405B: 30.84M GPU-hours × $4 = $123.36M
    assert "Llama 3.1 405B as a multiple of GPT-4" in html
    assert _data(response)["settings"] == {"price": 4.0, "util": 50, "hw": "", "a": "gpt-4", "b": "llama-3-1-405b"}


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("", ["$5.576M", "11.06×", "Cost at $2.00 per chip-hour"]),
     ("/fr", ["5,576M", "11,06×", "2,00"]),
     ("/zh-hans", ["11.06×", "2.00"])],
)  # fmt: skip
def test_numbers_follow_the_language(client, demo_content, prefix, expected):
    """Figures and ratios use the decimal separator of the visitor's language."""
    response = client.get(f"{prefix}/compare/")
    assert response.status_code == 200
    html = response.content.decode()
    for text in expected:
        assert text in html, text


def test_french_and_chinese_pages_are_translated(client, demo_content):
    """The page's own words are in the visitor's language."""
    assert "Coût d’entraînement" in client.get("/fr/compare/").content.decode()
    assert "训练成本" in client.get("/zh-hans/compare/").content.decode()


def test_a_draft_system_is_not_compared(client, demo_content):
    """A draft never reaches the comparison page."""
    from showcase.exhibits.models import AISystem, Status

    AISystem.objects.filter(slug="gpt-3").update(status=Status.DRAFT)
    html = client.get("/compare/").content.decode()
    assert "system-gpt-3" not in html
