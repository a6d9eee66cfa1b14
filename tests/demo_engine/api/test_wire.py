"""The OpenAI request format, validated in-process: what a client may send, and the field named when it is wrong."""

import json

import pytest

from demo_engine.api.wire import ApiError, error_for_failed_reply, finish_reason_for, parse_completion_request

MODEL = "smollm2-135m-instruct"
HI = [{"role": "user", "content": "hi"}]


def parse(body: dict, cap: int = 160):
    return parse_completion_request(json.dumps(body).encode(), max_new_tokens_cap=cap)


def test_a_minimal_request_gets_openais_defaults():
    """Only model and messages: temperature 1, top_p 1, a random seed, the site's longest reply, no streaming."""
    request = parse({"model": MODEL, "messages": HI})
    assert (request.temperature, request.top_p, request.max_new_tokens, request.stream) == (1.0, 1.0, 160, False)
    assert isinstance(request.seed, int) and request.stop == []


def test_every_sampling_field_is_taken_as_sent():
    """max_completion_tokens, temperature, top_p, seed, a single stop string and stream_options are all honoured."""
    sampling = {"max_completion_tokens": 12, "temperature": 0, "top_p": 0.5, "seed": 42, "stop": "\n\n"}
    request = parse(
        {"model": MODEL, "messages": HI, **sampling, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert (request.max_new_tokens, request.temperature, request.top_p, request.seed) == (12, 0.0, 0.5, 42)
    assert request.stop == ["\n\n"] and request.stream and request.include_usage


def test_a_larger_max_tokens_than_the_site_allows_is_capped():
    """Asking for more tokens than the site's maximum gets the maximum (finish_reason "length" shows it)."""
    assert parse({"model": MODEL, "messages": HI, "max_tokens": 100_000}, cap=160).max_new_tokens == 160


def test_text_parts_and_the_developer_role_are_understood():
    """Content given as text parts is joined; the "developer" role is the system prompt."""
    request = parse({"model": MODEL, "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "booth"}]},
    ]})  # fmt: skip
    assert request.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, booth"}]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": None}, "model"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0]"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"seed": -4}, "seed"),
        ({"stop": ["", "x"]}, "stop"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function"}]}, "tools"),
    ],
)
def test_a_wrong_field_is_refused_with_400_naming_it(fields, param):
    """Each invalid field is a 400 whose `param` names it, so a client knows what to fix."""
    with pytest.raises(ApiError) as refused:
        parse({"model": MODEL, "messages": HI, **fields})
    assert refused.value.status == 400 and refused.value.param == param


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_a_400(raw):
    """A body that is not a JSON object is a 400 in OpenAI's format."""
    with pytest.raises(ApiError) as refused:
        parse_completion_request(raw, max_new_tokens_cap=160)
    assert refused.value.status == 400 and refused.value.body()["error"]["type"] == "invalid_request_error"


def test_an_unknown_model_is_a_404_as_openai_answers_it():
    """A model the booth does not serve is a 404 "model_not_found" naming the model field."""
    with pytest.raises(ApiError) as refused:
        parse({"model": "gpt-4o", "messages": HI})
    assert (refused.value.status, refused.value.code, refused.value.param) == (404, "model_not_found", "model")


@pytest.mark.parametrize(
    ("code", "status"),
    [("prompt_too_long", 413), ("no_worker", 503), ("worker_lost", 503), ("engine_error", 500)],
)
def test_a_failed_reply_maps_to_the_right_http_status(code, status):
    """A reply the worker failed becomes 413 (prompt too long), 503 (no worker, worker lost) or 500."""
    assert error_for_failed_reply({"status": "failed", "code": code, "reason": "why"}).status == status


def test_finish_reason_says_length_when_the_reply_was_cut():
    """finish_reason is "length" for max_tokens or the site's time limit, "stop" otherwise."""
    assert finish_reason_for({"finish_reason": "length", "code": ""}) == "length"
    assert finish_reason_for({"finish_reason": "cancelled", "code": "time_limit"}) == "length"
    assert finish_reason_for({"finish_reason": "stop", "code": ""}) == "stop"


def test_finish_reason_says_content_filter_when_a_blocked_phrase_cut_the_reply():
    """A reply the content filter cut reads as OpenAI's "content_filter", not as a natural end."""
    assert finish_reason_for({"finish_reason": "cancelled", "code": "blocked_phrase"}) == "content_filter"


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"[" * 100_000 + b"]" * 100_000, None),  # nested deeper than the parser recurses
        (
            b'{"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "a \\ud800 b"}]}',
            "messages[0].content",
        ),
        (
            b'{"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "a \\u0000 b"}]}',
            "messages[0].content",
        ),
        (
            b'{"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "hi"}], "stop": "\\udfff"}',
            "stop",
        ),
    ],
    ids=["deep", "lone-surrogate", "nul", "surrogate-stop"],
)
def test_odd_text_is_a_400_naming_the_field(raw, param):
    """Deep nesting, lone surrogates and NUL characters are refused with 400 in OpenAI's format, before anything is
    saved (SQLite cannot encode a lone surrogate, PostgreSQL cannot store a NUL)."""
    with pytest.raises(ApiError) as refused:
        parse_completion_request(raw, max_new_tokens_cap=16)
    assert refused.value.status == 400 and refused.value.param == param
    assert refused.value.body()["error"]["type"] == "invalid_request_error"


def test_frequency_and_presence_penalties_are_taken_as_sent_and_off_by_default():
    """OpenAI's frequency_penalty and presence_penalty (-2 to 2) are honoured; left out, they are 0 (no penalty)."""
    default = parse({"model": MODEL, "messages": HI})
    assert (default.frequency_penalty, default.presence_penalty) == (0.0, 0.0)
    request = parse({"model": MODEL, "messages": HI, "frequency_penalty": 1.5, "presence_penalty": -2})
    assert (request.frequency_penalty, request.presence_penalty) == (1.5, -2.0)


@pytest.mark.parametrize(
    ("name", "value"), [("frequency_penalty", 2.5), ("presence_penalty", -3), ("presence_penalty", "1")]
)
def test_a_penalty_outside_openais_range_is_a_400(name, value):
    """A frequency or presence penalty outside -2..2 (or not a number) is refused, naming the field."""
    with pytest.raises(ApiError) as refused:
        parse({"model": MODEL, "messages": HI, name: value})
    assert refused.value.status == 400 and refused.value.param == name


def test_logit_bias_is_taken_as_sent_and_off_by_default():
    """OpenAI's logit_bias (token id strings to numbers from -100 to 100) is honoured; left out, nothing is biased."""
    assert parse({"model": MODEL, "messages": HI}).logit_bias == {}
    request = parse({"model": MODEL, "messages": HI, "logit_bias": {"504": -100, "7": 2.5}})
    assert request.logit_bias == {"504": -100.0, "7": 2.5}


@pytest.mark.parametrize(
    "value", [{"504": 101}, {"504": -100.5}, {"hello": 1}, {"-3": 1}, {"504": "1"}, [504], "504", {"504": True}]
)
def test_a_logit_bias_outside_openais_format_is_a_400(value):
    """A bias outside -100..100, a key that is not a token id, or a value that is not an object is refused."""
    with pytest.raises(ApiError) as refused:
        parse({"model": MODEL, "messages": HI, "logit_bias": value})
    assert refused.value.status == 400 and refused.value.param == "logit_bias"
