"""A visitor in real Chromium, against the real ASGI server: home → directory → filter → exhibitor page."""

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def visitor_page(live_stack, browser):
    """A fresh browser context on the module's Chromium (Debian's, see tests/e2e/conftest.py)."""
    live_stack.manage("load_demo_content")
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
    yield page
    context.close()


def test_visitor_walks_from_home_to_a_filtered_exhibitor(live_stack, visitor_page):
    """From the home page a visitor reaches the directory, filters by country and category, and opens an exhibitor."""
    visitor_page.goto(live_stack.base_url + "/")
    figures = visitor_page.locator(".figure-grid").inner_text()
    assert "more than 3,000" in figures and "800" in figures and "more than 800" not in figures  # the source's words
    visitor_page.get_by_role("link", name="Browse the exhibitors").click()
    visitor_page.wait_for_url("**/exhibitors/")
    assert visitor_page.locator(".exhibitor-card").count() == 8

    visitor_page.get_by_label("Country").select_option("China")
    visitor_page.get_by_label("Category").select_option("robotics")
    visitor_page.get_by_role("button", name="Filter").click()
    visitor_page.wait_for_url("**/exhibitors/?*country=China*")
    cards = visitor_page.locator(".exhibitor-card")
    assert cards.count() == 1
    assert visitor_page.locator(".result-count").inner_text() == "1 exhibitor"

    cards.get_by_role("link", name="Huangpu Robotics").click()
    visitor_page.wait_for_url("**/exhibitors/huangpu-robotics/")
    assert visitor_page.get_by_role("heading", level=1).inner_text().startswith("Huangpu Robotics")
    assert "HP-Walker humanoid" in visitor_page.locator("#products-heading + .card-grid").inner_text()
    assert visitor_page.console_errors == []


def test_visitor_switches_to_french_on_the_same_page(live_stack, visitor_page):
    """The language switcher shows the same exhibitor page in French."""
    visitor_page.goto(live_stack.base_url + "/exhibitors/huangpu-robotics/")
    visitor_page.get_by_role("link", name="Français").click()
    visitor_page.wait_for_url("**/fr/exhibitors/huangpu-robotics/")
    assert visitor_page.locator("html").get_attribute("lang") == "fr"
    assert visitor_page.get_by_role("link", name="Exposants").first.is_visible()
