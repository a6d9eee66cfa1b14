"""The OpenAI-compatible HTTP API end to end: real Daphne, a real Celery worker running our engine, real Redis,
and the official `openai` package as one of the clients. Each test checks what an API user would notice."""

import asyncio
import json
import re
import time

import httpx
import openai
import pytest
import redis

from demo_engine.chat_client import ChatSocketClient
from demo_engine.reply_stream import decode_frame

pytestmark = [pytest.mark.e2e]

MODEL = "smollm2-135m-instruct"
QUESTION = "What is the capital of France?"
GREEDY = {"temperature": 0.0, "top_p": 0.9, "seed": 7}  # top_p as the reference reply samples it


def new_key(live_stack, *args: str) -> str:
    output = live_stack.manage("create_api_key", "e2e", *args)
    return re.search(r"sk-waic-[\w-]+", output).group(0)


@pytest.fixture(scope="module")
def api_key(live_stack) -> str:
    return new_key(live_stack)


@pytest.fixture
def client(live_stack, api_key) -> openai.OpenAI:
    # No retries: a 429 or 503 must reach the test, not be retried away.
    return openai.OpenAI(base_url=f"{live_stack.base_url}/v1", api_key=api_key, max_retries=0, timeout=120)


def post(live_stack, body: dict | bytes, *, key: str | None, timeout: float = 120) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers["Content-Type"] = "application/json"
    return httpx.post(f"{live_stack.base_url}/v1/chat/completions", content=content, headers=headers, timeout=timeout)


def reply_streams(live_stack) -> dict[int, bytes]:
    """The replies' streams on the stack's Redis, by message id: `<site prefix>reply:<id>:<token>`."""
    client = redis.Redis.from_url(live_stack.redis_url)
    try:
        keys = list(client.scan_iter(match=f"{live_stack.redis_prefix}reply:*", _type="stream"))
    finally:
        client.close()
    return {int(key.decode()[len(live_stack.redis_prefix) :].split(":")[1]): key for key in keys}


def last_reply_end(live_stack) -> tuple[dict, float]:
    """The `end` frame of the newest reply on the stack's Redis, and when (epoch s) it was written."""
    streams = reply_streams(live_stack)
    client = redis.Redis.from_url(live_stack.redis_url)
    try:
        entries = client.xrange(streams[max(streams)])
    finally:
        client.close()
    entry_id, fields = entries[-1]
    return decode_frame(fields), int(entry_id.split(b"-")[0]) / 1000


def wait_for_last_reply_end(live_stack, timeout_s: float = 10) -> tuple[dict, float]:
    """`last_reply_end` once the newest reply's stream holds its `end` (or the last frame after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    end, ended_at = last_reply_end(live_stack)
    while end["type"] != "end" and time.monotonic() < deadline:
        time.sleep(0.1)
        end, ended_at = last_reply_end(live_stack)
    return end, ended_at


def assert_stopped_soon_after(live_stack, end: dict, ended_at: float, disconnected_at: float) -> None:
    """The web process asks the worker to stop at once on disconnect, and generation ends soon after. The end bound
    is 2 s, not 1, because the worker's own stop latency (poll every 100 ms, then one step) is tested by the chat's
    stop test, and here other processes may load the machine's two cores. (The stop flag itself is deleted with
    the reply's end, so it cannot date the request.)"""
    assert end["type"] == "end" and end["status"] == "stopped" and end["finish_reason"] == "cancelled"
    assert ended_at - disconnected_at < 2.0


def usage_totals(live_stack, key: str) -> dict:
    code = (
        "from demo_engine.api import selectors as s; import json; "
        f"print(json.dumps(s.api_usage_totals(api_key=s.api_key_by_secret(secret='{key}'))))"
    )
    return json.loads(live_stack.manage("shell", "-c", code).strip().splitlines()[-1])


def test_models_lists_the_served_model_to_a_key_holder(live_stack, client):
    """GET /v1/models lists the booth's models (plain and grounded) for a valid key, and refuses a wrong key with 401
    in OpenAI's format."""
    assert [model.id for model in client.models.list()] == [MODEL, "booth-assistant"]
    response = httpx.get(f"{live_stack.base_url}/v1/models", headers={"Authorization": "Bearer sk-waic-nope"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.slow
def test_greedy_completion_equals_the_engines_own_output_and_is_counted(live_stack, client, api_key, chat_engine):
    """A greedy, seeded completion (openai package, no streaming) is exactly the engine's own output for that
    prompt, with usage; the key's usage record counts the request and its tokens."""
    before = usage_totals(live_stack, api_key)
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=24, **GREEDY
    )
    expected = chat_engine.reference_reply(QUESTION, temperature=0.0, seed=7, max_new_tokens=24)
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == expected
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage.completion_tokens > 0 and completion.usage.prompt_tokens > 10
    after = usage_totals(live_stack, api_key)
    assert after["requests"] == before["requests"] + 1
    assert after["completion_tokens"] - before["completion_tokens"] == completion.usage.completion_tokens
    assert after["prompt_tokens"] - before["prompt_tokens"] == completion.usage.prompt_tokens


def test_logit_bias_steers_a_greedy_completion(live_stack, client):
    """OpenAI's logit_bias through the official client: -100 on the plain answer's first token makes the greedy
    answer start otherwise; +100 on one token makes every token of the answer that one."""
    from demo_engine.engine.gguf_loader import default_gguf_path
    from demo_engine.engine.tokenizer import ChatTokenizer

    tokenizer = ChatTokenizer.from_gguf(default_gguf_path())
    question = [{"role": "user", "content": QUESTION}]
    plain = client.chat.completions.create(model=MODEL, messages=question, max_tokens=6, **GREEDY)
    first = tokenizer.encode(plain.choices[0].message.content)[0]
    avoided = client.chat.completions.create(model=MODEL, messages=question, max_tokens=6,
                                             logit_bias={str(first): -100}, **GREEDY)  # fmt: skip
    assert not avoided.choices[0].message.content.startswith(tokenizer.decode([first]))
    forced_id = tokenizer.encode(" Shanghai")[0]
    forced = client.chat.completions.create(model=MODEL, messages=question, max_tokens=3,
                                            logit_bias={str(forced_id): 100}, **GREEDY)  # fmt: skip
    assert forced.choices[0].message.content == tokenizer.decode([forced_id]) * 3


@pytest.mark.slow
def test_streamed_completion_sends_chunks_usage_and_done(live_stack, client, api_key, chat_engine):
    """With stream=true the text arrives as chat.completion.chunk events (openai package), equal to the engine's
    greedy output, with a final usage chunk; the raw stream ends with `data: [DONE]`."""
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_completion_tokens=24, stream=True,
        stream_options={"include_usage": True}, **GREEDY,
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == chat_engine.reference_reply(QUESTION, temperature=0.0, seed=7, max_new_tokens=24)
    assert len([chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]) >= 2
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0

    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "stream": True}
    raw = post(live_stack, body, key=api_key)
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0].removeprefix("data: "))["choices"][0]["delta"]["role"] == "assistant"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 3}, "temperature"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_an_invalid_body_is_a_400_naming_the_field(live_stack, api_key, body, param):
    """A wrong field is answered 400 in OpenAI's error format with `param` naming it; nothing is generated."""
    response = post(live_stack, body, key=api_key)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]


def test_a_missing_or_wrong_key_is_a_401(live_stack, client):
    """No key, or a key that was never issued, gets 401 (the openai package raises AuthenticationError)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    assert post(live_stack, body, key=None).status_code == 401
    stranger = openai.OpenAI(base_url=f"{live_stack.base_url}/v1", api_key="sk-waic-forged", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])


def test_a_prompt_longer_than_the_context_is_a_413(live_stack, api_key):
    """A prompt whose newest turn does not fit in the model's context is refused with 413, not cut silently."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "lorem ipsum dolor " * 1500}], "max_tokens": 8}
    response = post(live_stack, body, key=api_key)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "context_length_exceeded"


def test_over_the_keys_rate_limit_is_a_429_with_retry_after(live_stack):
    """A key over its requests per minute gets 429 with Retry-After (openai's RateLimitError), others do not."""
    limited = openai.OpenAI(base_url=f"{live_stack.base_url}/v1", api_key=new_key(live_stack, "--requests-per-minute",
                            "2"), max_retries=0, timeout=120)  # fmt: skip
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    limited.chat.completions.create(**ask)
    limited.chat.completions.create(**ask)
    with pytest.raises(openai.RateLimitError) as refused:
        limited.chat.completions.create(**ask)
    assert 1 <= int(refused.value.response.headers["Retry-After"]) <= 60
    assert refused.value.body["code"] == "rate_limit_exceeded"


@pytest.mark.slow
def test_a_client_that_disconnects_mid_stream_stops_its_generation_at_once(live_stack, api_key):
    """Closing the connection mid-stream stops the reply at once: it ends `stopped`, far below max_tokens, and
    the tokens it did generate still count in the key's usage."""
    before = usage_totals(live_stack, api_key)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Write a very long story about a robot."}],
            "max_tokens": 160, "temperature": 0.7, "seed": 3, "stream": True}  # fmt: skip
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(timeout=120) as http:
        with http.stream("POST", f"{live_stack.base_url}/v1/chat/completions", json=body, headers=headers) as response:
            assert response.status_code == 200
            content_events = 0
            for line in response.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                    content_events += 1
                if content_events >= 3:
                    break
        disconnected_at = time.time()  # leaving both blocks closes the socket
    end, ended_at = wait_for_last_reply_end(live_stack)
    assert_stopped_soon_after(live_stack, end, ended_at, disconnected_at)
    assert end["stats"]["generated_tokens"] < 100
    for _attempt in range(3):  # the usage of a stopped reply is recorded just after it ends
        after = usage_totals(live_stack, api_key)
        if after["completion_tokens"] > before["completion_tokens"]:
            break
    assert after["requests"] == before["requests"] + 1
    assert after["completion_tokens"] - before["completion_tokens"] == end["stats"]["generated_tokens"]


@pytest.mark.slow
def test_a_client_that_gives_up_waiting_stops_its_generation(live_stack, api_key):
    """A non-streaming client that gives up and disconnects while its reply is being generated stops that reply:
    no tokens made for nobody. The client leaves once its reply's first tokens are in Redis, not after a fixed time:
    the whole reply (160 tokens, the test site's cap) can take less than a second on a quiet machine."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a very long story about a robot."}],
        "max_tokens": 160,
        "temperature": 0.7,
        "seed": 5,
        "logit_bias": {"0": -100, "2": -100},  # no end of text: the reply runs to its cap
    }
    earlier = max(reply_streams(live_stack), default=0)

    def generating() -> bool:
        newer = [key for message_id, key in reply_streams(live_stack).items() if message_id > earlier]
        if not newer:
            return False
        client = redis.Redis.from_url(live_stack.redis_url)
        try:
            return any(decode_frame(fields)["type"] == "delta" for _id, fields in client.xrange(newer[0]))
        finally:
            client.close()

    async def give_up_once_generating() -> None:
        async with httpx.AsyncClient(base_url=live_stack.base_url, timeout=120) as client:
            headers = {"Authorization": f"Bearer {api_key}"}
            request = asyncio.create_task(client.post("/v1/chat/completions", json=body, headers=headers))
            deadline = time.monotonic() + 60
            while not await asyncio.to_thread(generating):
                assert not request.done(), "the reply ended before its first tokens were seen"
                assert time.monotonic() < deadline, "no reply started generating within 60 s"
                await asyncio.sleep(0.02)
            assert not request.done(), "the whole reply came back before the client could give up"
            request.cancel()  # the client gives up: its connection is closed
            with pytest.raises(asyncio.CancelledError):
                await request

    asyncio.run(give_up_once_generating())
    disconnected_at = time.time()
    end, ended_at = wait_for_last_reply_end(live_stack)
    assert_stopped_soon_after(live_stack, end, ended_at, disconnected_at)
    assert end["stats"]["generated_tokens"] < 160


@pytest.mark.slow
def test_a_browser_chat_and_an_api_stream_complete_side_by_side(live_stack, api_key):
    """A visitor on the chat socket and an API client streaming at the same time both get complete replies."""

    async def browser() -> dict:
        async with ChatSocketClient(live_stack.base_url) as chat:
            result = await chat.ask("Tell me about Shanghai.", options={"temperature": 0.0, "seed": 1,
                                                                       "max_new_tokens": 40})  # fmt: skip
            return {"status": result.end["status"], "text": result.text, "window": (result.sent_at, result.ended_at)}

    async def api() -> dict:
        client = openai.AsyncOpenAI(base_url=f"{live_stack.base_url}/v1", api_key=api_key, max_retries=0)
        started = time.monotonic()
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Tell me about Paris."}], max_tokens=40,
            temperature=0.0, seed=1, stream=True,
        )  # fmt: skip
        parts, finish = [], None
        async for chunk in stream:
            parts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        await client.close()
        return {"finish": finish, "text": "".join(parts), "window": (started, time.monotonic())}

    async def scenario():
        return await asyncio.gather(browser(), api())

    chat, streamed = asyncio.run(scenario())
    assert chat["status"] == "done" and chat["text"]
    assert streamed["finish"] in ("stop", "length") and streamed["text"]
    # They overlapped: each started before the other ended.
    assert chat["window"][0] < streamed["window"][1] and streamed["window"][0] < chat["window"][1]


@pytest.mark.slow
def test_no_worker_is_a_503_and_the_api_recovers(live_stack, client):
    """With no inference worker running, a completion is refused with 503 (openai's InternalServerError) within
    seconds; once a worker is back, completions work again."""
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    live_stack.stop_worker()
    try:
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as refused:
            client.chat.completions.create(**ask)
        assert refused.value.status_code == 503 and refused.value.body["code"] == "no_worker"
        assert time.monotonic() - started < 15
    finally:
        live_stack.start_worker()
        live_stack.wait_ready()
    assert client.chat.completions.create(**ask).choices[0].finish_reason in ("stop", "length")


@pytest.mark.slow
def test_a_flood_of_cookieless_sockets_from_one_address_cannot_starve_the_api(live_stack, client):
    """40 sockets without a cookie, all from one address, each send a message: only the per-address cap are
    accepted (the others are told why), and an API client with its own key is still answered."""
    from django.conf import settings

    cap = settings.CHAT_MAX_IN_FLIGHT_PER_ADDRESS

    async def flood() -> list[str]:
        sockets = [ChatSocketClient(live_stack.base_url, cookie="") for _ in range(40)]
        try:
            for socket in sockets:
                await socket.connect()
            outcomes = []
            for index, socket in enumerate(sockets):
                await socket.send({"type": "send", "text": f"Flood {index}", "options": {"max_new_tokens": 16}})
                frame = await socket.recv(timeout=30)
                outcomes.append(frame["code"] if frame["type"] == "error" else "accepted")
            return outcomes
        finally:
            for socket in sockets:
                await socket.close()

    outcomes = asyncio.run(flood())
    assert outcomes.count("accepted") == cap
    # Refused: past the address's cap, and (cookieless sockets are counted by address) past the minute's rate.
    assert set(outcomes) == {"accepted", "too_many_from_address", "rate_limited"}
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}],
                                            max_tokens=8, **GREEDY)  # fmt: skip
    assert answer.choices[0].message.content
