"""Hostile input against the real site: sockets from another origin (or none) are refused, and markup typed into
content or coming out of the model renders inert in real Chromium: no script runs, no image or javascript: link
appears."""

import asyncio
import http.server
import json
import threading

import pytest
import websockets
from playwright.sync_api import Page, expect
from websockets.exceptions import InvalidStatus

pytestmark = [pytest.mark.e2e]

# Each line is a different way in; every one of them would set window.__pwned if it ran.
HOSTILE = "\n\n".join(
    [
        "Hello <script>window.__pwned = 'script'</script>",
        '<img src="x" onerror="window.__pwned = \'img\'">',
        "<svg onload=\"window.__pwned = 'svg'\"></svg><iframe src=\"javascript:window.__pwned='iframe'\"></iframe>",
        "[click me](javascript:window.__pwned='md-link') and <a href=\"javascript:window.__pwned='a'\">raw</a>",
        "![a picture](http://127.0.0.1:9/pixel.png) ![b](x onerror=window.__pwned='md-img')",
        "[ref link][r]\n\n[r]: javascript:window.__pwned='ref'",
        '<div style="background:url(javascript:window.__pwned=1)" onclick="window.__pwned=\'click\'">CLICKABLE</div>',
        "`<b>code stays text</b>` done.",
    ]
)

# Markup that must not exist inside the content (the page's own header and footer links are outside it).
INJECTED = ", ".join(["img", "script:not([type='application/json'])", "svg", "iframe", "object", "embed",
                      "a[href^='javascript']", "[onerror]", "[onload]", "[onclick]"])  # fmt: skip


def refused(url: str, origin: str | None) -> int:
    async def connect() -> int:
        try:
            async with websockets.connect(url, origin=origin, open_timeout=10):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    return asyncio.run(connect())


@pytest.mark.parametrize("route", ["/ws/chat/", "/ws/live/"])
@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "null",
        None,
        "http://127.0.0.1:9999",
        "http://localhost:{port}",
        "https://127.0.0.1:{port}",
    ],
    ids=["foreign", "null", "missing", "other-port", "other-host-name", "other-scheme"],
)
def test_socket_from_another_or_no_origin_is_refused(live_stack, route, origin):
    """A WebSocket handshake with another site's Origin, another port or scheme or name of this host, the opaque
    "null" one, or none at all is refused (403): cookies ignore ports, so only this very origin may open one."""
    origin = origin.format(port=live_stack.port) if origin else origin
    assert refused(live_stack.ws_url + route, origin) == 403


@pytest.mark.parametrize("route", ["/ws/chat/", "/ws/live/"])
def test_socket_from_the_sites_own_origin_is_accepted(live_stack, route):
    """The same handshake from the site's own origin is accepted, so the refusals above are the Origin's doing."""
    assert refused(live_stack.ws_url + route, live_stack.base_url) == 101


ATTACKER_PAGE = """<!doctype html><title>attacker</title><script>
window.outcome = "pending";
const socket = new WebSocket("ws://127.0.0.1:PORT/ws/chat/");
socket.onopen = () => { window.outcome = "opened"; };
socket.onmessage = (event) => { window.outcome = "read: " + event.data.slice(0, 60); };
socket.onclose = () => { if (window.outcome === "pending") window.outcome = "refused"; };
</script>"""


@pytest.mark.browser
def test_a_page_on_another_port_cannot_open_the_visitors_chat_socket(live_stack, page: Page):
    """A visitor has a chat session on the site; a page served on another port of the same host, in the same
    browser (so with the visitor's cookie), tries to open the chat socket: Chromium's handshake is refused and
    the page reads nothing. The site's own page, in the same browser, still connects."""
    page.goto(f"{live_stack.base_url}/chat/")
    expect(page.locator("#connection")).to_contain_text("online", timeout=20_000)
    body = ATTACKER_PAGE.replace("PORT", str(live_stack.port)).encode()

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        attacker = page.context.new_page()
        attacker.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        attacker.wait_for_function("window.outcome !== 'pending'", timeout=15_000)
        assert attacker.evaluate("window.outcome") == "refused"
    finally:
        server.shutdown()
    expect(page.locator("#connection")).to_contain_text("online")


def watch_for_scripts(page: Page) -> list[str]:
    """Dialogs and console errors seen by the page; `window.__pwned` is checked separately."""
    seen: list[str] = []
    page.on("dialog", lambda dialog: (seen.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    return seen


def assert_inert(page: Page, container: str, seen: list[str]) -> None:
    page.wait_for_timeout(300)  # let onerror/onload handlers fire, if any were created
    assert page.evaluate("window.__pwned === undefined"), page.evaluate("String(window.__pwned)")
    injected = page.locator(container).locator(INJECTED)
    assert injected.count() == 0, [injected.nth(i).evaluate("e => e.outerHTML") for i in range(injected.count())]
    assert seen == []


@pytest.mark.browser
@pytest.mark.slow
def test_hostile_content_saved_by_staff_renders_as_text(live_stack, page: Page):
    """An exhibitor description and an AI system's notes full of markup show as text on the directory, the
    exhibitor's page, the AI system's page and the comparison: no script runs, no element appears."""
    create = f"""
from showcase.exhibits.models import AISystem, Exhibitor
hostile = {json.dumps(HOSTILE)}
Exhibitor.objects.create(name="Hostile <b>Robotics</b>", slug="hostile-robotics", country="Nowhere",
                         description=hostile, status="published")
AISystem.objects.create(name="Evil <img src=x onerror=window.__pwned=1>", slug="hostile-model",
                        organisation="<script>window.__pwned=2</script>", summary=hostile, released_on="2025-01-01",
                        scope_note="<a href='javascript:window.__pwned=3'>scope</a>", status="published")
"""
    live_stack.manage("shell", "-c", create)
    try:
        seen = watch_for_scripts(page)
        for path, marker in [("/exhibitors/hostile-robotics/", "CLICKABLE"), ("/exhibitors/?q=Hostile", "Hostile"),
                             ("/ai-systems/hostile-model/", "CLICKABLE"), ("/compare/", "Evil")]:  # fmt: skip
            page.goto(live_stack.base_url + path)
            main = page.locator("main")
            expect(main).to_contain_text(marker)
            assert_inert(page, "main", seen)
        expect(page.locator("main")).to_contain_text("<img src=x onerror=window.__pwned=1>")
    finally:
        live_stack.manage("shell", "-c", "from showcase.exhibits.models import AISystem, Exhibitor; "
                          "Exhibitor.objects.filter(slug='hostile-robotics').delete(); "
                          "AISystem.objects.filter(slug='hostile-model').delete()")  # fmt: skip


@pytest.mark.browser
@pytest.mark.slow
def test_hostile_model_output_renders_inert_in_the_chat(live_stack, page: Page):
    """Model output full of markup, whether saved (shown on reload) or arriving as streamed deltas, goes through
    the chat page's real renderer and comes out as text: no script runs, no image or javascript: link appears."""
    page.goto(f"{live_stack.base_url}/chat/")
    expect(page.locator("#connection")).to_contain_text("online", timeout=20_000)
    session_key = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    half = len(HOSTILE) // 2
    plant = f"""
import json
from demo_engine import reply_stream
from demo_engine.reply_stream import ReplyRef
from demo_engine.models import Conversation, Message
from showcase.core import shared_redis
hostile = {json.dumps(HOSTILE)}
from django.contrib.sessions.backends.db import SessionStore
# A socket writes no conversation before its first message: make the one this session's page will show.
conversation = Conversation.objects.create(session_key={session_key!r})
session = SessionStore(session_key={session_key!r})
session["conversation_id"] = str(conversation.id)
session.save()
Message.objects.create(conversation=conversation, role="user", content="Say something nasty.")
Message.objects.create(conversation=conversation, role="assistant", content=hostile, status="done")
Message.objects.create(conversation=conversation, role="user", content="Again, streamed.")
streaming = Message.objects.create(conversation=conversation, role="assistant", status="streaming")
reply = ReplyRef.of(streaming)
client = shared_redis.client()
key = reply_stream.stream_key(reply)
client.setex(reply_stream.heartbeat_key(reply), 120, "1")
frames = [
    {{"type": "status", "message_id": streaming.id, "seq": 1, "status": "streaming"}},
    {{"type": "delta", "message_id": streaming.id, "seq": 2, "text": hostile[:{half}], "tokens": 10}},
    {{"type": "delta", "message_id": streaming.id, "seq": 3, "text": hostile[{half}:], "tokens": 20}},
    {{"type": "end", "message_id": streaming.id, "seq": 4, "status": "done", "reason": "", "stats": None}},
]
for frame in frames:
    client.xadd(key, reply_stream.encode_frame(frame))
client.expire(key, 600)
"""
    live_stack.manage("shell", "-c", plant)
    seen = watch_for_scripts(page)
    page.reload()
    expect(page.locator("#connection")).to_contain_text("online", timeout=20_000)
    replies = page.locator(".msg.assistant")
    expect(replies).to_have_count(2, timeout=20_000)
    for index in range(2):
        expect(replies.nth(index)).to_have_attribute("data-status", "done", timeout=20_000)
        expect(replies.nth(index).locator(".body")).to_contain_text("CLICKABLE")
        expect(replies.nth(index).locator(".body code")).to_have_text("<b>code stays text</b>")
    assert_inert(page, ".messages", seen)
