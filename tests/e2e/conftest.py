"""Fixtures of the end-to-end tests."""

import os

import pytest


class ReferenceEngine:
    """The engine, loaded in the test process the way a worker loads it, to say what a reply must be."""

    def __init__(self) -> None:
        from demo_engine import runtime
        from demo_engine.engine import Engine

        self.engine = Engine.load(**runtime.engine_options())
        self.engine.start()

    def reference_reply(
        self, question: str, *, temperature: float, seed: int, max_new_tokens: int, repetition_penalty: float = 1.0
    ) -> str:
        """The reply the engine gives; `repetition_penalty` as the reply was saved with (1.0, off, by default)."""
        from demo_engine.generation import sampling_params

        plan = self.engine.render_chat([{"role": "user", "content": question}], max_new_tokens=max_new_tokens)
        events = []
        from demo_engine.models import Message

        top_p = Message._meta.get_field("top_p").default  # what a chat reply is sampled with
        params = sampling_params(temperature=temperature, top_p=top_p, seed=seed, max_new_tokens=max_new_tokens,
                                 repetition_penalty=repetition_penalty)  # fmt: skip
        handle = self.engine.submit(plan.token_ids, params, events.append)
        final = handle.wait(timeout=300)
        assert final is not None and final.finish_reason in ("stop", "length")
        return "".join(event.text for event in events)


@pytest.fixture(scope="session")
def chat_engine():
    engine = ReferenceEngine()
    yield engine
    engine.engine.stop()


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright, for one test module (Playwright's own browser download does not
    work here). Module-scoped on purpose: Playwright's sync API keeps an event loop running in this thread, which
    must be gone again before the next module calls asyncio.run() or async_to_sync()."""
    from playwright.sync_api import sync_playwright

    # While the loop runs, Django's async-safety check would trip on ORM use in this thread; only for this module.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser):
    """A fresh browser context (no cookies) and page per test."""
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()
