"""The booth assistant end to end: real Daphne, a real Celery worker (engine, embedding model, indexing task on the
`default` queue), real Redis, real Chromium. Staff publish in the admin; visitors ask on the chat page; developers
ask `booth-assistant` through the official `openai` package."""

import re
import time

import openai
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e]

STAFF_PASSWORD = "tall-Heron-73-compass"
MAKE_STAFF = (
    "from django.contrib.auth import get_user_model; U = get_user_model(); "
    "U.objects.filter(username='booth-staff').exists() or "
    f"U.objects.create_superuser('booth-staff', 'booth@example.org', '{STAFF_PASSWORD}')"
)
MARK_A_FIGURE = (
    "from demo_engine.models import Message; m = Message.objects.filter(role='assistant').latest('id'); "
    "m.content = m.content + ' Staff also say booth Z-999.'; m.unsupported_figures = ['Z-999']; "
    "m.unsupported_figure_count = 1; m.save()"
)


@pytest.fixture(scope="module")
def site(live_stack):
    live_stack.manage("load_demo_content")
    live_stack.manage("rebuild_booth_index", "--no-progress")
    live_stack.manage("shell", "-c", MAKE_STAFF)
    return live_stack


def ask(page, question: str):
    """Ask on the chat page; the new reply's element once its sources and text are in."""
    before = page.locator(".msg.assistant").count()
    page.locator("#prompt").fill(question)
    page.locator("#prompt").press("Enter")
    reply = page.locator(".msg.assistant").nth(before)
    expect(reply).to_have_attribute("data-status", re.compile("done|stopped"), timeout=120_000)
    return reply


@pytest.mark.browser
@pytest.mark.slow
def test_staff_publish_an_exhibitor_and_the_chat_answers_with_it_then_forgets_it(site, browser):
    """Published in the admin, an exhibitor reaches answers within 5 s: its hall and booth, a card linking to its
    page. Unpublished, it is gone from the answers."""
    staff = browser.new_context().new_page()
    visitor = browser.new_context().new_page()
    errors: list[str] = []
    visitor.on("console", lambda message: message.type == "error" and errors.append(message.text))
    try:
        staff.goto(site.base_url + "/admin/login/?next=/admin/exhibits/exhibitor/add/")
        staff.fill("#id_username", "booth-staff")
        staff.fill("#id_password", STAFF_PASSWORD)
        staff.click("input[type=submit]")
        staff.fill("#id_name", "Nimbus Drones Ltd")
        staff.fill("#id_country", "Canada")
        staff.fill("#id_hall", "H4")
        staff.fill("#id_booth", "F-301")
        staff.fill("#id_description", "Delivery drones that fly themselves between warehouses.")
        staff.select_option("#id_status", "published")
        # Last, once the admin's prepopulating script has written its own slug from the name.
        staff.locator("#id_slug").fill("nimbus-drones-ltd")
        staff.locator("#id_slug").press("Tab")
        assert staff.locator("#id_slug").input_value() == "nimbus-drones-ltd"
        visitor.goto(site.base_url + "/chat/")
        expect(visitor.locator("#connection")).to_contain_text("online", timeout=20_000)
        staff.click("input[name=_save]")
        staff.wait_for_url("**/admin/exhibits/exhibitor/")
        saved_at = time.monotonic()

        visitor.locator("#prompt").fill("Where is Nimbus Drones Ltd?")
        visitor.locator("#prompt").press("Enter")
        card = visitor.locator(".msg.assistant").last.locator(".source-card").first
        expect(card).to_contain_text("Nimbus Drones Ltd", timeout=5_000)  # the question's own record, first
        assert time.monotonic() - saved_at < 5.0
        reply = visitor.locator(".msg.assistant").last
        expect(reply).to_have_attribute("data-status", re.compile("done|stopped"), timeout=120_000)
        expect(card.locator("a")).to_have_attribute("href", "/exhibitors/nimbus-drones-ltd/")
        shown = reply.inner_text()
        assert "H4" in shown and "F-301" in shown, shown
        assert "F-301" not in reply.locator("mark.not-found").all_inner_texts()

        staff.goto(site.base_url + "/admin/exhibits/exhibitor/?q=Nimbus")
        staff.get_by_role("link", name="Nimbus Drones Ltd").click()
        staff.select_option("#id_status", "draft")
        staff.click("input[name=_save]")
        staff.wait_for_url(re.compile(r"/admin/exhibits/exhibitor/(\?.*)?$"))  # back to the (filtered) list

        again = ask(visitor, "Where is Nimbus Drones Ltd?")
        assert "/exhibitors/nimbus-drones-ltd/" not in [
            link.get_attribute("href") for link in again.locator(".source-card a").all()
        ]
        assert "F-301" not in again.locator(".sources-box").inner_text()
        assert errors == []
    finally:
        staff.context.close()
        visitor.context.close()


@pytest.mark.browser
def test_a_figure_found_in_no_source_is_marked_in_the_page(site, page):
    """A booth answer's figure that no source has is highlighted as not found, and counted under the reply."""
    page.goto(site.base_url + "/chat/")
    expect(page.locator("#connection")).to_contain_text("online", timeout=20_000)
    reply = ask(page, "Which booth is Huangpu Robotics at?")
    expect(reply.locator(".source-card").first).to_contain_text("B-112")
    site.manage("shell", "-c", MARK_A_FIGURE)  # what the worker saves when the model writes a booth no source has
    page.reload()
    mark = page.locator(".msg.assistant").last.locator("mark.not-found")
    expect(mark).to_have_count(1, timeout=20_000)
    assert mark.inner_text().startswith("Z-999")
    assert mark.get_attribute("title") == "not found in the sources"
    assert page.locator(".msg.assistant").last.locator(".figures-note").inner_text().startswith("1 ")


@pytest.mark.browser
def test_an_off_topic_question_gets_i_dont_know_and_the_directory(site, page):
    """Nothing published answers it: the reply says so and links the directory and the comparison page."""
    page.goto(site.base_url + "/fr/chat/")
    expect(page.locator("#connection")).to_contain_text("en ligne", timeout=20_000)
    reply = ask(page, "Qui a gagné la coupe du monde de football en 2018 ?")
    assert reply.locator(".body").inner_text().startswith("Je ne sais pas")
    links = [link.get_attribute("href") for link in reply.locator(".nothing-found a").all()]
    assert links == ["/fr/exhibitors/", "/fr/compare/"]
    # Words shared with a record ("capitale", "France": the investor Rive Gauche Capital, from France) are no answer.
    shared = ask(page, "Quelle est la capitale de la France ?")
    assert shared.locator(".body").inner_text().startswith("Je ne sais pas")
    assert shared.locator(".source-card").count() == 0


@pytest.mark.browser
@pytest.mark.slow
def test_the_kiosk_answers_from_the_content_with_a_source_card(site, browser):
    """On the booth's screen a question gets the booth assistant's answer: a source card with the record's title and
    its hall and booth, under a reply that arrived whole (the sources frames counted in the reply's order), and
    nothing on the card leads off the screen."""
    from tests.e2e.test_kiosk_browser import ask as kiosk_ask
    from tests.e2e.test_kiosk_browser import create_kiosk, kiosk_page

    page = kiosk_page(browser, site, create_kiosk(site, "Booth assistant screen"))
    try:
        kiosk_ask(page, "Which booth is Huangpu Robotics at?")
        reply = page.locator(".msg.assistant").first
        expect(reply).to_have_attribute("data-status", "done", timeout=120_000)
        card = reply.locator(".source-card").first
        expect(card).to_contain_text("Huangpu Robotics")
        expect(card.locator(".fact")).to_contain_text("B-112")
        assert reply.locator(".source-card a").count() == 0
        saved = site.manage("shell", "-c", "from demo_engine.models import Message; "
                            "print(len(Message.objects.filter(role='assistant').latest('id').content))")  # fmt: skip
        assert reply.get_attribute("data-length") == saved.strip().splitlines()[-1]
        assert page.console_errors == []
    finally:
        page.context.close()


def test_booth_assistant_through_the_openai_client(site):
    """`booth-assistant` answers from the content with its sources (absolute links); streamed, they come last."""
    key = re.search(r"sk-waic-[\w-]+", site.manage("create_api_key", "booth-e2e")).group(0)
    client = openai.OpenAI(base_url=f"{site.base_url}/v1", api_key=key, max_retries=0, timeout=120)
    assert "booth-assistant" in [model.id for model in client.models.list()]
    question = [{"role": "user", "content": "Which booth is Huangpu Robotics at?"}]
    answer = client.chat.completions.create(model="booth-assistant", messages=question, temperature=0, max_tokens=48)
    assert answer.model == "booth-assistant"
    sources = answer.model_extra["sources"]
    assert sources[0]["url"] == f"{site.base_url}/exhibitors/huangpu-robotics/"
    assert sources[0]["fact"] == "Huangpu Robotics: hall H1, booth B-112"
    assert isinstance(answer.model_extra["unsupported_figures"], list)

    streamed = list(client.chat.completions.create(model="booth-assistant", messages=question, temperature=0,
                                                   max_tokens=48, stream=True))  # fmt: skip
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert text == answer.choices[0].message.content
    assert streamed[-1].model_extra["sources"] == sources

    plain = client.chat.completions.create(model="smollm2-135m-instruct", messages=question, temperature=0,
                                           max_tokens=8)  # fmt: skip
    assert "sources" not in (plain.model_extra or {})
