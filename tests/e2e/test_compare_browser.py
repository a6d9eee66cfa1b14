"""The comparison page in real Chromium against the real site: the calculator, live updates from the admin, the
socket dropping and coming back, and screenshots of the page and of the live panel while a chat streams."""

import asyncio
import re
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
STAFF_PASSWORD = "wide-Cormorant-58-lantern"
MAKE_STAFF = (
    "from django.contrib.auth import get_user_model; U = get_user_model(); "
    "U.objects.filter(username='compare-staff').exists() or "
    f"U.objects.create_superuser('compare-staff', 'staff@example.org', '{STAFF_PASSWORD}')"
)
SET_DEEPSEEK_HIGH = (
    "from showcase.exhibits.models import AISystem; s = AISystem.objects.get(slug='deepseek-v3'); "
    "s.training_cost_high_usd = {value}; s.save()"
)


@pytest.fixture(scope="module")
def site(live_stack):
    live_stack.manage("load_demo_content")
    live_stack.manage("shell", "-c", MAKE_STAFF)
    return live_stack


def _watch_console(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    return errors


def _cost_cell(page, slug: str):
    return page.locator(f'[data-cost-at-price="{slug}"] .figure-value')


def test_moving_the_price_recomputes_every_cost(site, page):
    """Moving the price slider recomputes each cost at once, in the browser, and the URL keeps the setting."""
    errors = _watch_console(page)
    page.goto(site.base_url + "/compare/")
    assert _cost_cell(page, "deepseek-v3").inner_text() == "$5.576M"
    page.evaluate("window.notReloaded = true")
    page.locator("#price-range").fill("4")
    assert _cost_cell(page, "deepseek-v3").inner_text() == "$11.15M"  # 2.788M GPU-hours × $4
    assert _cost_cell(page, "llama-3-1-405b").inner_text() == "$123.4M"  # 30.84M × $4
    assert page.locator("#cost-at-price-heading").inner_text() == "Cost at $4.00 per chip-hour"
    assert "price=4.00" in page.url
    gpt4_before = _cost_cell(page, "gpt-4").inner_text()
    page.locator("#util").fill("80")  # GPT-4's chip-hours come from its compute: half the hours at twice the use
    assert _cost_cell(page, "gpt-4").inner_text() != gpt4_before
    page.locator("#hw").select_option("nvidia-a100-sxm-80gb")
    assert page.locator("#price").input_value() == "1.50"
    assert _cost_cell(page, "deepseek-v3").inner_text() == "$4.182M"
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("Chart.getChart(document.getElementById('cost-chart')).data.datasets[1].data[1]") == (
        pytest.approx(2_788_000 * 1.5)
    )
    # The shared link opens with the same settings.
    page.goto(page.url)
    assert _cost_cell(page, "deepseek-v3").inner_text() == "$4.182M"
    assert errors == []


def test_switching_the_price_mode_changes_the_head_to_heads_basis_and_ratio(site, page):
    """Switching to "each chip at its own price" re-prices the head-to-head without a reload: its basis label names
    the chip's own price and its ratio changes (BLOOM's A100 at $1.50 against DeepSeek-V3's H800 at $2: 0.39× →
    0.29×); the URL keeps the mode, and the shared link opens in that mode."""
    errors = _watch_console(page)
    page.goto(site.base_url + "/compare/?a=deepseek-v3&b=bloom")
    row = page.locator('#head-to-head-results tr[data-ratio="cost_at_price"]')
    mode_line = page.locator("#head-to-head-results .price-mode")
    expect(row.locator("td.ratio")).to_have_text("0.39×")  # 1.08M ÷ 2.788M GPU-hours, one price for both
    expect(row).to_contain_text("its 1.08M GPU-hours × $2.00 per chip-hour")
    expect(mode_line).to_have_text("Costs at your price: $2.00 per chip-hour for both.")
    expect(row).to_contain_text("like with like")
    page.evaluate("window.notReloaded = true")

    page.get_by_label("each chip at its own price").check()
    expect(row.locator("td.ratio")).to_have_text("0.29×", timeout=3000)  # $1.62M ÷ $5.576M
    expect(row).to_contain_text("its 1.08M GPU-hours × $1.50 per A100 SXM 80GB-hour, the chip’s own price")
    expect(mode_line).to_have_text("Costs at your price: each chip at its own price.")
    assert _cost_cell(page, "bloom").inner_text() == "$1.62M"
    assert page.locator("#cost-at-price-heading").inner_text() == "Cost at each chip’s own price"
    assert "mode=chip" in page.url and page.evaluate("window.notReloaded") is True

    page.goto(page.url)
    expect(row.locator("td.ratio")).to_have_text("0.29×")
    assert page.get_by_label("each chip at its own price").is_checked()
    page.locator("#price-range").fill("3")  # a price typed or slid is one price for every chip again
    expect(row.locator("td.ratio")).to_have_text("0.39×", timeout=3000)
    assert "mode=chip" not in page.url
    assert errors == []


@pytest.mark.slow
def test_screenshot_of_the_comparison_shows_which_ratios_compare_like_with_like(site, browser):
    """The page and its head-to-head, photographed for a reviewer (var/screenshots/compare-h2h.png): ticks on the
    like-with-like ratios, warnings on the others."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-GB")
    page = context.new_page()
    try:
        page.goto(site.base_url + "/compare/")
        page.screenshot(path=str(SCREENSHOTS / "compare-full.png"), full_page=True)
        page.locator("#head-to-head").screenshot(path=str(SCREENSHOTS / "compare-h2h.png"))
        verdicts = page.locator("#head-to-head-results tr.verdict-row")
        assert verdicts.count() == 9
        assert page.locator("#head-to-head-results tr.verdict-row-like").count() == 6
    finally:
        context.close()


def test_french_visitors_read_french_numbers(site, page):
    """The costs the browser computes use the French decimal comma."""
    page.goto(site.base_url + "/fr/compare/")
    assert re.match(r"5,576\s?M", _cost_cell(page, "deepseek-v3").inner_text())


def test_an_admin_save_updates_an_open_comparison_without_reload(site, browser):
    """Staff save DeepSeek-V3 in the admin in one browser; the comparison open in another shows it within 2 s."""
    visitor = browser.new_context().new_page()
    staff = browser.new_context().new_page()
    try:
        visitor.goto(site.base_url + "/compare/")
        expect(visitor.locator("#live-status")).to_have_attribute("data-state", "live")
        visitor.evaluate("window.notReloaded = true")
        row = visitor.locator("#system-deepseek-v3")
        assert "$5.576M–$6M" not in row.inner_text()

        staff.goto(site.base_url + "/admin/login/?next=/admin/exhibits/aisystem/")
        staff.fill("#id_username", "compare-staff")
        staff.fill("#id_password", STAFF_PASSWORD)
        staff.click("input[type=submit]")
        staff.get_by_role("link", name="DeepSeek-V3", exact=True).click()
        staff.fill("#id_training_cost_high_usd", "6000000")
        staff.click("input[name=_save]")
        staff.wait_for_url("**/admin/exhibits/aisystem/")
        saved_at = time.monotonic()

        expect(row).to_contain_text("$5.576M–$6M", timeout=2000)
        assert time.monotonic() - saved_at < 2.0
        assert visitor.evaluate("window.notReloaded") is True
        assert "$5.576M–$6M" in visitor.locator("#compare-claims").inner_text()
    finally:
        site.manage("shell", "-c", SET_DEEPSEEK_HIGH.format(value=5576000))
        visitor.context.close()
        staff.context.close()


def test_a_dropped_socket_is_said_and_reconnected(site, page):
    """When the socket drops the page says so, keeps the last figures with their age, and reconnects by itself."""
    sockets = []

    def proxy(ws):
        ws.connect_to_server()
        sockets.append(ws)

    page.route_web_socket(re.compile(r".*/ws/live/$"), proxy)
    page.goto(site.base_url + "/compare/")
    expect(page.locator("#demo-workers")).not_to_have_text("–")
    workers_shown = page.locator("#demo-workers").inner_text()
    sockets[-1].close()
    status = page.locator("#live-status")
    expect(status).to_have_attribute("data-state", "lost", timeout=3000)
    assert "Connection lost: reconnecting" in status.inner_text()
    assert page.locator("#demo-workers").inner_text() == workers_shown  # the last figures stay
    expect(status).to_contain_text("s ago", timeout=3000)
    expect(status).to_have_attribute("data-state", "live", timeout=5000)
    assert len(sockets) == 2


@pytest.mark.slow
def test_screenshots_of_the_page_and_of_the_live_panel_while_a_chat_streams(site, browser):
    """The page and the live panel, photographed while a reply streams: tokens/s and the cost per million tokens."""
    from demo_engine.chat_client import ChatSocketClient

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-GB")
    page = context.new_page()
    errors = _watch_console(page)

    async def chat() -> None:
        async with ChatSocketClient(site.base_url) as client:
            await client.ask("Tell me a long story about a robot at a conference in Shanghai.",
                             options={"temperature": 0.7, "seed": 3, "max_new_tokens": 150})  # fmt: skip

    streaming = threading.Thread(target=lambda: asyncio.run(chat()), daemon=True)
    try:
        page.goto(site.base_url + "/compare/")
        page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)
        streaming.start()
        expect(page.locator("#demo-tokens-per-s")).to_have_text(re.compile(r"^[1-9]\d[\d,.]*$"), timeout=60000)
        panel = page.locator("#demo-live")
        panel.scroll_into_view_if_needed()
        panel.screenshot(path=str(SCREENSHOTS / "live-panel.png"))
        assert page.locator("#demo-cost").inner_text().startswith("$")
        assert page.locator("#demo-backend").inner_text().startswith("CPU")
        page.goto(site.base_url + "/zh-hans/compare/")
        page.screenshot(path=str(SCREENSHOTS / "compare-zh-hans.png"), full_page=False)
    finally:
        streaming.join(timeout=120)
        context.close()
    assert errors == []
