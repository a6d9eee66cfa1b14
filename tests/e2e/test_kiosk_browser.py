"""The booth's own screen in real Chromium against the real stack (Daphne, Celery worker, Redis): the idle timeout
clears the screen and the next visitor gets a new server-side conversation; the QR link moves a conversation to a
second browser once; French and Chinese browsers land in their language while the page cache keeps serving English
to English browsers; blocked words are refused or cut. Screenshots of the kiosk land in var/screenshots/."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
KIOSK_VIEWPORT = {"width": 1280, "height": 800}

# In the page: a second socket of the kiosk's own browser session, to see what the server gives that session.
SESSION_PROBE = """async (resumeId) => {
  const ws = new WebSocket("ws://" + location.host + "/ws/chat/");
  const frames = [];
  await new Promise((resolve, reject) => {
    ws.onmessage = (event) => {
      frames.push(JSON.parse(event.data));
      if (frames.length === 1 && resumeId == null) resolve();
    };
    ws.onerror = reject;
    ws.onopen = () => {
      if (resumeId != null) {
        ws.send(JSON.stringify({type: "resume", message_id: resumeId, after_seq: 0}));
        setTimeout(resolve, 1500);
      }
    };
  });
  ws.close();
  return frames;
}"""


def create_kiosk(live_stack, name: str, *options: str) -> str:
    """A new screen in the stack's database; its path as `create_kiosk` prints it."""
    url = live_stack.manage("create_kiosk", name, *options).strip()
    assert re.fullmatch(r"/kiosk/[A-Za-z0-9_-]{20,}/", url), url
    return url


def kiosk_page(browser: Browser, live_stack, path: str, *, locale: str = "en-GB") -> Page:
    context = browser.new_context(viewport=KIOSK_VIEWPORT, locale=locale)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
    page.goto(live_stack.base_url + path)
    expect(page.locator("#connection")).to_have_class(re.compile("connection"))
    expect(page.locator("#kiosk")).to_have_attribute("data-mode", "attract")
    return page


def ask(page: Page, question: str) -> None:
    if page.locator("#kiosk").get_attribute("data-mode") == "attract":
        page.locator("#attract").click(position={"x": 5, "y": 5})
    expect(page.locator("#kiosk")).to_have_attribute("data-mode", "chat")
    page.locator("#prompt").fill(question)
    page.locator("#prompt").press("Enter")


def session_cookie(page: Page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")


def test_idle_clears_the_screen_and_the_next_visitor_gets_a_new_conversation(live_stack, browser):
    """After the idle time the screen returns to the attract loop, empty; its browser holds a new session, the
    previous reply cannot be resumed from it, and the next question starts a new server-side conversation."""
    path = create_kiosk(live_stack, "Idle screen", "--idle-seconds", "6")
    page = kiosk_page(browser, live_stack, path)
    ask(page, "What is a conference booth? One sentence.")
    reply = page.locator(".msg.assistant").first
    expect(reply).to_have_attribute("data-status", re.compile("done|stopped"), timeout=120_000)
    old_reply_id = int(reply.get_attribute("data-id"))
    old_conversation = page.evaluate(SESSION_PROBE, None)[0]["conversation_id"]
    assert old_conversation
    old_session = session_cookie(page)

    expect(page.locator("#kiosk")).to_have_attribute("data-mode", "attract", timeout=20_000)
    expect(page.locator("#kiosk")).to_have_attribute("data-resets", "1")
    expect(page.locator(".msg")).to_have_count(0)
    assert session_cookie(page) != old_session
    greeting, *answers = page.evaluate(SESSION_PROBE, old_reply_id)
    assert greeting["type"] == "hello" and greeting["conversation_id"] is None and greeting["messages"] == []
    assert [answer.get("code") for answer in answers] == ["not_found"]

    page.keyboard.press("H")  # a key brings the chat back at once, and its letter starts the question
    expect(page.locator("#kiosk")).to_have_attribute("data-mode", "chat")
    expect(page.locator("#prompt")).to_have_value("H")
    page.keyboard.type("ello!")
    page.keyboard.press("Enter")
    expect(page.locator(".msg.user")).to_have_count(1)
    expect(page.locator(".msg.assistant").first).to_have_attribute("data-status", re.compile("done|stopped"),
                                                                    timeout=120_000)  # fmt: skip
    new_conversation = page.evaluate(SESSION_PROBE, None)[0]
    assert new_conversation["conversation_id"] not in (None, old_conversation)
    assert [m["content"] for m in new_conversation["messages"] if m["role"] == "user"] == ["Hello!"]
    assert page.console_errors == []
    page.context.close()


def test_qr_link_moves_the_conversation_to_a_phone_once(live_stack, browser):
    """The QR code's link opens the conversation in a second browser, once; used again it answers 410, and the
    kiosk starts over for the next visitor."""
    path = create_kiosk(live_stack, "QR screen")
    page = kiosk_page(browser, live_stack, path)
    ask(page, "Name one city in China.")
    expect(page.locator(".msg.assistant").first).to_have_attribute("data-status", re.compile("done|stopped"),
                                                                    timeout=120_000)  # fmt: skip
    handover = page.locator("#handover")
    expect(handover).to_be_visible(timeout=10_000)
    assert page.locator("#handover-qr").get_attribute("src").startswith("data:image/svg+xml")
    link = handover.get_attribute("data-url")
    assert re.fullmatch(re.escape(live_stack.base_url) + r"/chat/continue/[A-Za-z0-9_-]{20,}/", link)
    reply_text = page.locator(".msg.assistant .body").first.inner_text()

    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
    phone_page = phone.new_page()
    phone_page.goto(link)
    assert phone_page.url == live_stack.base_url + "/chat/"
    expect(phone_page.locator(".msg.user")).to_have_text(["Name one city in China."], timeout=20_000)
    expect(phone_page.locator(".msg.assistant .body").first).to_have_text(reply_text)

    expect(page.locator("#kiosk")).to_have_attribute("data-mode", "attract", timeout=15_000)
    expect(page.locator("#attract-notice")).to_contain_text("Continued on your phone")
    expect(page.locator(".msg")).to_have_count(0)

    second = browser.new_context()
    response = second.new_page().goto(link)
    assert response.status == 410
    for context in (phone, second, page.context):
        context.close()


def test_a_french_browser_lands_on_french_while_english_browsers_get_the_cached_english_page(live_stack, browser):
    """`/` sends French and Chinese browsers to their language, every time; English browsers keep getting English,
    replayed by the page cache."""
    english = browser.new_context(locale="en-GB").new_page()
    # The first render of a fresh site stores nothing in front (no content version yet): a few visits fill it.
    for _ in range(3):
        response = english.goto(live_stack.base_url + "/")
    assert response.headers.get("x-page-cache") == "front"
    assert english.locator("html").get_attribute("lang") == "en"

    for locale, prefix, lang in (("fr-FR", "/fr/", "fr"), ("zh-CN", "/zh-hans/", "zh-hans")):
        visitor = browser.new_context(locale=locale).new_page()
        visitor.goto(live_stack.base_url + "/")
        assert visitor.url == live_stack.base_url + prefix
        assert visitor.locator("html").get_attribute("lang") == lang
        visitor.context.close()

    response = english.goto(live_stack.base_url + "/")
    assert response.headers.get("x-page-cache") == "front" and english.url == live_stack.base_url + "/"
    assert english.locator("html").get_attribute("lang") == "en"

    # A French visitor who chooses English on the switcher stays on English.
    chooser = browser.new_context(locale="fr-FR").new_page()
    chooser.goto(live_stack.base_url + "/exhibitors/")
    assert chooser.url == live_stack.base_url + "/fr/exhibitors/"
    chooser.locator(".language-switcher").get_by_role("link", name="English").click()
    chooser.wait_for_url(live_stack.base_url + "/exhibitors/")
    chooser.goto(live_stack.base_url + "/")
    assert chooser.url == live_stack.base_url + "/" and chooser.locator("html").get_attribute("lang") == "en"
    chooser.context.close()
    english.context.close()


@pytest.fixture
def blocked_phrases(live_stack):
    """Blocked phrases in the stack's database for one test, removed after it (other tests share the stack)."""
    live_stack.manage("shell", "-c", "from demo_engine.models import BlockedPhrase as B; "
                      "B.objects.create(phrase='forbidden fruit'); "
                      "[B.objects.create(phrase=word) for word in ('the', 'is', 'and')]")  # fmt: skip
    yield
    live_stack.manage("shell", "-c", "from demo_engine.models import BlockedPhrase as B; B.objects.all().delete()")


def test_a_blocked_word_is_refused_and_a_generated_one_is_cut(live_stack, browser, blocked_phrases):
    """A visitor's message with a blocked phrase is refused politely (nothing is sent to the model); a reply that
    produces one stops where it begins, with the filter named."""
    path = create_kiosk(live_stack, "Filter screen")
    page = kiosk_page(browser, live_stack, path)
    ask(page, "Tell me about the Forbidden Fruit")
    expect(page.locator("#notice")).to_contain_text("Sorry, this screen cannot answer that message.")
    expect(page.locator(".msg")).to_have_count(0)

    ask(page, "Describe Paris in two sentences.")
    reply = page.locator(".msg.assistant").first
    expect(reply).to_have_attribute("data-status", "stopped", timeout=120_000)
    expect(reply.locator(".state")).to_contain_text("content filter")
    shown = reply.locator(".body").inner_text()
    # Three of the commonest English words: a reply of two sentences about Paris cannot avoid them all.
    assert not re.search(r"(?<![A-Za-z0-9])(the|is|and)(?![A-Za-z0-9])", shown, re.IGNORECASE), shown
    page.context.close()


def test_kiosk_screenshots_in_english_and_chinese(live_stack, browser):
    """Every page of the attract loop, and the chat with its QR code, in English and in Chinese (Noto CJK), saved
    for a person to look at; the loop moves on by itself."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    live_stack.manage("load_demo_content")
    path = create_kiosk(live_stack, "Screenshot screen", "--slide-seconds", "3")
    visits = (("", "en-GB", "What is an H800?"), ("/zh-hans", "zh-CN", "你好！请介绍一下上海。"))
    for prefix, locale, question in visits:
        page = kiosk_page(browser, live_stack, prefix + path, locale=locale)
        kiosk = page.locator("#kiosk")
        for slide in ("compare", "demo", "questions"):
            expect(kiosk).to_have_attribute("data-slide", slide, timeout=10_000)
            expect(page.locator(f'#attract .slide[data-page="{slide}"]')).to_be_visible()
            if slide == "demo":
                expect(page.locator("#demo-backend")).not_to_have_text("–", timeout=10_000)
            page.wait_for_timeout(700)  # the slide fades in
            page.screenshot(path=SCREENSHOTS / f"kiosk-attract-{slide}-{locale}.png")
        ask(page, question)
        expect(page.locator(".msg.assistant").first).to_have_attribute("data-status", re.compile("done|stopped"),
                                                                        timeout=120_000)  # fmt: skip
        expect(page.locator("#handover")).to_be_visible(timeout=10_000)
        page.screenshot(path=SCREENSHOTS / f"kiosk-chat-{locale}.png")
        assert page.console_errors == []
        page.context.close()
