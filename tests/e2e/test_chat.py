"""The chat end to end: real Daphne, a real Celery worker running our engine, real Redis, real WebSocket clients.
Every reply is checked the way a visitor would notice it: complete, in order, and what the database saved."""

import asyncio
import signal
import time

import pytest

from demo_engine.chat_client import ChatSocketClient, ReplyResult

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SHORT = {"temperature": 0.0, "seed": 7, "max_new_tokens": 24}
LONG = {"temperature": 0.7, "seed": 3, "max_new_tokens": 400}


def run(coro):
    return asyncio.run(coro)


async def saved_reply(base_url: str, cookie: str, message_id: int) -> dict:
    """The reply as the server saved it, read through a new socket's greeting (what a reload shows)."""
    async with ChatSocketClient(base_url, cookie=cookie) as client:
        return next(m for m in client.hello["messages"] if m["id"] == message_id)


def assert_in_order(result: ReplyResult) -> None:
    assert result.seqs == list(range(1, len(result.seqs) + 1)), result.seqs
    assert result.end is not None and result.frames[-1] is result.end
    assert len(result.text) == result.end["length"], "every character of the saved reply arrived"


def test_streamed_answer_equals_the_engines_own_output(live_stack, chat_engine):
    """A greedy reply streamed to the browser is exactly what the engine generates for the same prompt and seed."""

    async def scenario() -> tuple[ReplyResult, dict]:
        async with ChatSocketClient(live_stack.base_url) as client:
            result = await client.ask("What is the capital of France?", options=SHORT)
            return result, await saved_reply(live_stack.base_url, client.cookie, result.message_id)

    result, saved = run(scenario())
    from django.conf import settings

    # A chat-page reply carries the site's documented repetition penalty.
    expected = chat_engine.reference_reply("What is the capital of France?", **SHORT,
                                           repetition_penalty=settings.CHAT_REPETITION_PENALTY)  # fmt: skip
    assert result.end["status"] == "done"
    assert_in_order(result)
    assert result.text == expected
    assert saved["content"] == result.text and saved["status"] == "done"
    stats = result.end["stats"]
    if result.end["finish_reason"] == "length":  # cut at the limit: exactly the limit's tokens were made
        assert stats["generated_tokens"] == SHORT["max_new_tokens"]
    else:  # the model ended it: fewer, and at least one
        assert result.end["finish_reason"] == "stop" and 0 < stats["generated_tokens"] < SHORT["max_new_tokens"]
    assert stats["backend"] and stats["time_to_first_token_ms"] > 0


def test_eight_concurrent_conversations_all_complete_in_order(live_stack):
    """Eight visitors chatting at once each get a complete, in-order reply equal to what was saved."""
    questions = [f"Tell me one fact about the number {n}." for n in range(8)]

    async def visitor(question: str) -> tuple[ReplyResult, dict]:
        async with ChatSocketClient(live_stack.base_url) as client:
            result = await client.ask(question, options={**SHORT, "max_new_tokens": 20})
            return result, await saved_reply(live_stack.base_url, client.cookie, result.message_id)

    async def scenario():
        return await asyncio.gather(*(visitor(q) for q in questions))

    for result, saved in run(scenario()):
        assert result.end["status"] == "done"
        assert_in_order(result)
        assert result.text and saved["content"] == result.text


def test_stop_halts_the_stream_within_a_second_and_keeps_the_partial_reply(live_stack):
    """Stop ends a streaming reply within 1 s; the partial reply is saved as stopped, equal to what was shown."""

    async def scenario():
        async with ChatSocketClient(live_stack.base_url) as client:
            await client.send({"type": "send", "text": "Write a long story about a robot.", "options": LONG})
            frames = await client.recv_until(lambda f: f["type"] == "delta" and f["seq"] >= 3, timeout=120)
            message_id = frames[-1]["message_id"]
            asked_at = time.monotonic()
            await client.send({"type": "stop"})
            rest = await client.recv_until(lambda f: f["type"] == "end", timeout=30)
            stop_latency = time.monotonic() - asked_at
            shown = "".join(f["text"] for f in frames + rest if f["type"] == "delta" and f["message_id"] == message_id)
            return rest[-1], stop_latency, shown, await saved_reply(live_stack.base_url, client.cookie, message_id)

    end, stop_latency, shown, saved = run(scenario())
    assert end["status"] == "stopped"
    assert stop_latency < 1.0
    assert saved["status"] == "stopped" and saved["content"] == shown and shown


def test_reload_mid_reply_resumes_complete_and_in_order(live_stack):
    """Closing the socket mid-reply and opening a new one (a reload) delivers the whole reply once, in order."""

    async def scenario():
        first = ChatSocketClient(live_stack.base_url)
        await first.connect()
        await first.send(
            {"type": "send", "text": "Describe Shanghai in a paragraph.", "options": LONG | {"max_new_tokens": 120}}
        )
        frames = await first.recv_until(lambda f: f["type"] == "delta" and f["seq"] >= 3, timeout=120)
        message_id = frames[-1]["message_id"]
        await first.close()
        async with ChatSocketClient(live_stack.base_url, cookie=first.cookie) as second:
            greeted = next(m for m in second.hello["messages"] if m["id"] == message_id)
            replay = ReplyResult(message_id=message_id)
            replay.frames = [
                f
                for f in await second.recv_until(lambda f: f["type"] == "end", timeout=120)
                if f.get("message_id") == message_id
            ]
        return greeted, replay, await saved_reply(live_stack.base_url, first.cookie, message_id)

    greeted, replay, saved = run(scenario())
    assert greeted["status"] in ("queued", "streaming") and greeted["content"] == ""
    assert_in_order(replay)
    assert replay.end["status"] == "done"
    assert saved["content"] == replay.text


def test_a_second_message_while_streaming_is_refused_clearly(live_stack):
    """While a reply streams, another message in the same conversation gets a clear error frame."""

    async def scenario():
        async with ChatSocketClient(live_stack.base_url) as client:
            await client.send({"type": "send", "text": "Count to fifty.", "options": LONG | {"max_new_tokens": 80}})
            await client.recv_until(lambda f: f["type"] == "delta", timeout=120)
            await client.send({"type": "send", "text": "And now?"})
            error = await client.recv_until(lambda f: f["type"] == "error", timeout=30)
            await client.send({"type": "stop"})
            await client.recv_until(lambda f: f["type"] == "end", timeout=30)
            return error[-1]

    error = run(scenario())
    assert error["code"] == "reply_in_progress"


def test_malformed_frames_leave_other_chats_unaffected(live_stack):
    """A client sending garbage (not JSON, binary, 1 MB of text) gets errors or a close; another chat completes."""

    async def attacker():
        async with ChatSocketClient(live_stack.base_url) as client:
            await client.send_raw("{not json")
            first = await client.recv()
            await client.send_raw(b"\x00\xff")
            second = await client.recv()
            try:
                await client.send({"type": "send", "text": "x" * 1_000_000})
                third = await client.recv()
            except Exception as exc:  # the server may close the socket instead: that is an answer too
                third = {"closed": repr(exc)}
            return first, second, third

    async def scenario():
        async with ChatSocketClient(live_stack.base_url) as bystander:
            pending = asyncio.create_task(bystander.ask("Say hello.", options=SHORT))
            answers = await attacker()
            return answers, await pending

    log_before = len(live_stack.log("web.log"))
    (first, second, third), result = run(scenario())
    assert first["code"] == "bad_frame" and second["code"] == "bad_frame"
    assert third.get("code") in ("frame_too_large", "too_long") or "closed" in third
    assert result.end["status"] == "done"
    assert "Traceback" not in live_stack.log("web.log")[log_before:]


def test_worker_killed_mid_reply_fails_it_and_the_chat_recovers(live_stack):
    """A worker killed mid-reply: the visitor sees a failure within 30 s, the partial text is saved as failed,
    the reply is never run again, and once a worker is back the next message streams normally."""

    async def killed_reply():
        client = ChatSocketClient(live_stack.base_url)
        await client.connect()
        await client.send({"type": "send", "text": "Tell me a very long story.", "options": LONG})
        frames = await client.recv_until(lambda f: f["type"] == "delta" and f["seq"] >= 3, timeout=120)
        message_id = frames[-1]["message_id"]
        live_stack.stop_worker(sig=signal.SIGKILL)
        killed_at = time.monotonic()
        rest = await client.recv_until(lambda f: f["type"] == "end", timeout=40)
        seen = "".join(f["text"] for f in frames + rest if f["type"] == "delta" and f.get("message_id") == message_id)
        await client.close()
        return client.cookie, message_id, rest[-1], time.monotonic() - killed_at, seen

    try:
        cookie, message_id, end, delay, seen = run(killed_reply())
    finally:
        live_stack.start_worker()
        live_stack.wait_ready()
    assert end["status"] == "failed" and "worker" in end["reason"]
    assert delay < 30

    async def after_restart():
        async with ChatSocketClient(live_stack.base_url, cookie=cookie) as client:
            result = await client.ask("Are you back?", options=SHORT)
        return result, await saved_reply(live_stack.base_url, cookie, message_id)

    result, saved = run(after_restart())
    assert result.end["status"] == "done"
    assert saved["status"] == "failed" and saved["content"] == seen
