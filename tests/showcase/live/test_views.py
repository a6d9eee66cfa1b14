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
    assert "about $6M using only 2,000 Nvidia H800 GPUs" in html  # the source's words: "seulement 2 000 GPU"
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
    assert _data(response)["settings"] == {"price": 4.0, "util": 50, "hw": "", "mode": "one", "a": "gpt-4",
                                           "b": "llama-3-1-405b"}  # fmt: skip


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


def _h2h_row(html: str, key: str) -> str:
    match = re.search(rf'<tr data-ratio="{key}".*?</tr>', html, re.S)
    return match.group(0)


def test_head_to_head_says_which_ratios_compare_like_with_like(client, demo_content):
    """The default head-to-head shows 11.06× for the cost at one price and 0.96× per unit of compute, each marked like
    with like; the reported costs' 30.49× is marked "bases differ" and names both bases."""
    html = client.get("/compare/").content.decode()
    cost = _h2h_row(html, "cost_at_price")
    assert "11.06×" in cost and "verdict-like" in cost
    assert "its 2.788M GPU-hours × $2.00 per chip-hour" in cost and "its 30.84M GPU-hours × $2.00 per chip-hour" in cost
    assert "0.96×" in _h2h_row(html, "cost_per_zettaflop_at_price")
    reported = _h2h_row(html, "training_cost")
    assert "30.49×" in reported and "bases differ" in reported and "<strong>30.49×" not in reported
    assert "DeepSeek&#x27;s own GPU-hours × $2 per H800-hour" in reported and "Epoch AI, cloud rates" in reported
    active = _h2h_row(html, "parameters_active")
    assert "10.95×" in active and "37B" in active and "405B" in active
    assert "Costs at your price: $2.00 per chip-hour for both." in html


def test_per_chip_mode_is_kept_in_the_page_and_its_links(client, demo_content):
    """`mode=chip` prices each chip at its own record's price, says so, and keeps the mode in the pair picker's link."""
    html = client.get("/compare/?mode=chip&a=deepseek-v3&b=bloom").content.decode()
    assert "Cost at each chip’s own price" in html
    assert "Costs at your price: each chip at its own price." in html
    assert "its 1.08M GPU-hours × $1.50 per A100 SXM 80GB-hour, the chip’s own price" in _h2h_row(html, "cost_at_price")
    assert '<input type="hidden" name="mode" value="chip">' in html
    assert 'name="mode" value="chip" checked' in html


def test_every_figure_carries_one_of_the_three_labels_and_the_legend_explains_them(client, demo_content):
    """Derived figures show their formula (DeepSeek-V3's compute is our 6·N·D), and the legend explains all three."""
    html = client.get("/compare/").content.decode()
    row = re.search(r'<tr id="system-deepseek-v3".*?</tr>', html, re.S).group(0)
    assert "badge-derived" in row and "6 × 37B active parameters × 14.8T tokens" in row
    assert "17%" in row and "of the FP8 peak" in row
    legend = re.search(r'<section class="legend".*?</section>', html, re.S).group(0)
    for word in ("Disclosed", "Derived", "Estimated", "like with like", "bases differ"):
        assert word in legend, word
    bloom = re.search(r'<tr id="system-bloom".*?</tr>', html, re.S).group(0)
    assert "overstated: the cost covers more than the compute" in bloom
