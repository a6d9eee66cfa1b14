"""Fixtures of the end-to-end tests."""

import pytest


class ReferenceEngine:
    """The engine, loaded in the test process the way a worker loads it, to say what a reply must be."""

    def __init__(self) -> None:
        from demo_engine import runtime
        from demo_engine.engine import Engine

        self.engine = Engine.load(**runtime.engine_options())
        self.engine.start()

    def reference_reply(self, question: str, *, temperature: float, seed: int, max_new_tokens: int) -> str:
        from demo_engine.generation import sampling_params

        plan = self.engine.render_chat([{"role": "user", "content": question}], max_new_tokens=max_new_tokens)
        events = []
        params = sampling_params(temperature=temperature, seed=seed, max_new_tokens=max_new_tokens)
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


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright drives Debian's Chromium: Playwright's own browser download does not work here."""
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "headless": True, "args": CHROMIUM_ARGS}
