"""The chat in real Chromium: a visitor types, watches the reply grow, stops one, reloads and finds it all."""

import contextlib

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

SAMPLER = """() => {
  window.__lengths = [];
  setInterval(() => {
    const replies = document.querySelectorAll('.msg.assistant');
    const last = replies[replies.length - 1];
    if (last) window.__lengths.push([Number(last.dataset.length || 0), last.dataset.status]);
  }, 15);
}"""


def test_chat_streams_stops_and_survives_a_reload(live_stack, page: Page):
    """The reply grows in visible steps, Stop halts a reply, and a reload shows the whole conversation."""
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.goto(f"{live_stack.base_url}/chat/")
    expect(page.locator("#connection")).to_contain_text("online", timeout=20_000)
    page.evaluate(SAMPLER)
    page.locator("#grounded").uncheck()  # the plain model: a long reply to watch grow and to stop

    page.locator("#prompt").fill("What is a conference booth? Answer in three sentences.")
    page.locator("#prompt").press("Enter")
    first = page.locator(".msg.assistant").nth(0)
    expect(first).to_have_attribute("data-status", "done", timeout=120_000)
    samples = page.evaluate("window.__lengths")
    growing = sorted({length for length, status in samples if status == "streaming" and length > 0})
    assert len(growing) >= 3, f"the reply should grow in at least three visible steps, saw {growing}"
    assert "tok/s" in first.locator(".stats").inner_text()
    first_text = first.locator(".body").inner_text()

    page.locator("#prompt").fill("Now write a long essay about robots in Shanghai.")
    page.locator("#send").click()
    second = page.locator(".msg.assistant").nth(1)
    expect(second).to_have_attribute("data-status", "streaming", timeout=120_000)
    page.locator("#stop").click()
    expect(second).to_have_attribute("data-status", "stopped", timeout=5_000)
    expect(page.locator("#stop")).to_be_hidden()

    page.reload()
    expect(page.locator("#connection")).to_contain_text("online", timeout=20_000)
    expect(page.locator(".msg.user")).to_have_count(2)
    expect(page.locator(".msg.assistant").nth(0)).to_have_attribute("data-status", "done")
    expect(page.locator(".msg.assistant").nth(1)).to_have_attribute("data-status", "stopped")
    assert page.locator(".msg.assistant").nth(0).locator(".body").inner_text() == first_text
    assert console_errors == []


def test_model_output_and_user_text_cannot_inject_markup(live_stack, page: Page):
    """A visitor's message full of HTML is shown as text; no script runs and no element is injected."""
    page.goto(f"{live_stack.base_url}/chat/")
    expect(page.locator("#connection")).to_contain_text("online", timeout=20_000)
    page.evaluate("window.__pwned = false")
    hostile = '<img src=x onerror="window.__pwned=true"><script>window.__pwned=true</script> [x](javascript:alert(1))'
    page.locator("#prompt").fill(hostile)
    page.locator("#prompt").press("Enter")
    question = page.locator(".msg.user").last
    expect(question).to_have_text(hostile)
    expect(page.locator(".msg.assistant").last).not_to_have_attribute("data-status", "queued", timeout=60_000)
    # (the site's own links under a reply, its sources or the directory, are not model output)
    assert page.locator(".messages img, .messages script, .messages .body a, .msg.user a").count() == 0
    assert page.evaluate("window.__pwned") is False
    # The reply ends by itself or by Stop (it may end between a look and a click): either way Stop goes away.
    with contextlib.suppress(PlaywrightTimeoutError):
        page.locator("#stop").click(timeout=2_000)
    expect(page.locator("#stop")).to_be_hidden(timeout=60_000)
