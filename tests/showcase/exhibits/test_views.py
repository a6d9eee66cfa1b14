"""Public exhibit pages: what a visitor sees, what stays hidden, and how much work a page costs."""

import re

import pytest

from showcase.exhibits import services
from showcase.exhibits.models import AISystem, Exhibitor, Pitch, Product, Startup, Status

pytestmark = pytest.mark.django_db


def test_home_shows_the_conference_figures_and_featured_exhibits(client, demo_content):
    """The home page shows WAIC 2025's headline figures as "more than N" and the featured exhibits."""
    body = client.get("/").content.decode()
    assert "World Artificial Intelligence Conference 2025" in body
    assert "more than 1,200" in body and "more than 70,000" in body
    assert "HP-Walker humanoid" in body
    assert "Shelf Scout" not in body  # not featured


def test_home_keeps_the_source_wording_of_each_figure(client, demo_content):
    """The seed says "plus de 3 000 produits issus de 800 entreprises": the products read "more than 3,000", the
    companies a plain 800; the source line links to the article."""
    body = client.get("/").content.decode()
    assert "more than 3,000" in body
    assert "<strong>800</strong> <span>companies</span>" in body and "more than 800" not in body
    assert 'href="https://doitong.com/news/fr-FR/china-s-ai-summit-focuses-on-competing-with-us-technology"' in body


def test_home_links_to_the_chat_and_the_directory(client, demo_content):
    """The home page links to the chat page (when the chat exists) and to the exhibitor directory."""
    body = client.get("/").content.decode()
    assert 'href="/exhibitors/"' in body
    assert 'href="/chat/"' in body


def test_directory_filters_by_country_and_category(client, demo_content):
    """The directory narrows to one country and one category, and says how many match."""
    body = client.get("/exhibitors/", {"country": "China", "category": "robotics"}).content.decode()
    assert "Huangpu Robotics" in body
    assert "Lujiazui Silicon" not in body  # China, but chips
    assert "Sakura Vision" not in body  # robotics, but Japan
    assert "1 exhibitor" in body


def test_directory_search_matches_description(client, demo_content):
    """A search finds exhibitors by words of their description."""
    body = client.get("/exhibitors/", {"q": "wearable"}).content.decode()
    assert "Bay Devices" in body and "Huangpu Robotics" not in body


def test_directory_paginates_and_keeps_filters(client, demo_content):
    """With many exhibitors the directory is paginated, and the next-page link keeps the filters."""
    services.exhibitor_volume_generate(exhibitors=250, products=0)
    response = client.get("/exhibitors/", {"country": "China"})
    body = response.content.decode()
    assert "Page 1 of" in body
    assert 'href="?country=China&amp;page=2"' in body
    assert len(response.context["page"].object_list) == 24


def test_drafts_are_invisible_to_the_public(client, demo_content):
    """A draft exhibitor, AI system or product answers 404 or is left out of every list."""
    exhibitor = Exhibitor.objects.get(slug="huangpu-robotics")
    services.content_unpublish(item=exhibitor)
    services.content_unpublish(item=AISystem.objects.get(slug="gpt-3"))
    services.content_unpublish(item=Product.objects.get(slug="lz-900"))
    assert client.get("/exhibitors/huangpu-robotics/").status_code == 404
    assert client.get("/ai-systems/gpt-3/").status_code == 404
    assert "Huangpu Robotics" not in client.get("/exhibitors/").content.decode()
    assert "GPT-3" not in client.get("/ai-systems/").content.decode()
    assert "LZ-900" not in client.get("/exhibitors/lujiazui-silicon/").content.decode()
    assert "HP-Walker" not in client.get("/").content.decode()  # a published product of a draft exhibitor


def test_pitch_of_a_draft_startup_is_not_listed(client, demo_content):
    """The pitch schedule leaves out slots whose start-up is a draft."""
    startup = Startup.objects.get(slug="loire-legal")
    startup.status = Status.DRAFT
    startup.save()
    body = client.get("/pitches/").content.decode()
    assert "Loire Legal" not in body and "Tidewater AI" in body
    assert Pitch.objects.filter(startup=startup).exists()


def test_markup_in_content_is_shown_as_text(client, db):
    """Markup typed into a name or description is displayed as text, never run or rendered."""
    services.exhibitor_create(
        name="<script>alert('x')</script> Labs",
        slug="script-labs",
        country="France",
        description='<img src=x onerror="alert(1)"> **bold**',
        status=Status.PUBLISHED,
    )
    for path in ("/exhibitors/", "/exhibitors/script-labs/"):
        body = client.get(path).content.decode()
        assert "<script>alert" not in body and "<img src=x" not in body
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; Labs" in body


def test_every_ai_system_figure_has_its_label_and_source(client, demo_content):
    """Each known figure on an AI system page carries disclosed/estimated and a link to its source."""
    body = client.get("/ai-systems/llama-3-1-405b/").content.decode()
    assert "30.84M" in body and "16,384" in body and "$170M" in body
    assert body.count('class="badge badge-disclosed"') >= 3
    assert 'class="badge badge-estimated"' in body
    assert "https://epoch.ai/data/notable-ai-models" in body
    assert "up to" in body


def test_deepseek_page_keeps_the_press_claim_apart(client, demo_content):
    """DeepSeek-V3's page shows the sourced $5.576M and, separately, the press claim of about $6M."""
    body = client.get("/ai-systems/deepseek-v3/").content.decode()
    assert "$5.576M" in body and "2.788M" in body
    assert "As claimed in the press" in body and "about $6M using only 2,000 Nvidia H800 GPUs" in body
    assert "Final training run only" in body


def test_unknown_exhibitor_is_the_friendly_404(client, db):
    """An unknown exhibitor address shows the site's own 404 page."""
    response = client.get("/exhibitors/no-such-company/")
    assert response.status_code == 404
    assert b"not on show" in response.content


PAGES = [
    "/",
    "/exhibitors/",
    "/exhibitors/?country=China&category=robotics",
    "/exhibitors/huangpu-robotics/",
    "/ai-systems/",
    "/ai-systems/deepseek-v3/",
    "/startups/",
    "/pitches/",
]


@pytest.mark.parametrize("path", PAGES)
def test_pages_run_a_bounded_number_of_queries(client, demo_content, django_assert_max_num_queries, path):
    """Each public page runs at most 8 queries, with the demo content and with 20 times more exhibitors."""
    with django_assert_max_num_queries(8):
        assert client.get(path).status_code == 200
    services.exhibitor_volume_generate(exhibitors=200, products=600)
    exhibitor = Exhibitor.objects.get(slug="huangpu-robotics")
    for index in range(30):
        services.product_create(exhibitor=exhibitor, name=f"Extra {index}", status=Status.PUBLISHED, featured=True)
    with django_assert_max_num_queries(8):
        assert client.get(path).status_code == 200


def test_hardware_table_shows_fp8_peaks_and_how_derived_figures_were_computed(client, demo_content):
    """The H800's peaks are marked derived (the H100's datasheet, dense = with sparsity ÷ 2) with the formula; a chip
    without FP8 says so."""
    html = client.get("/ai-systems/").content.decode()
    h800 = re.search(r'<tr id="hardware-nvidia-h800-sxm">.*?</tr>', html, re.S).group(0)
    assert "1,979 TFLOP/s" in h800 and "badge-derived" in h800
    assert "NVIDIA published no H800 SXM datasheet" in h800
    v100 = re.search(r'<tr id="hardware-nvidia-v100-sxm2">.*?</tr>', html, re.S).group(0)
    assert "no FP8" in v100 and "badge-derived" not in v100
