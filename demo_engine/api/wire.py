"""The OpenAI wire format: validating a chat-completion request, and the objects and errors sent back.

Knows JSON shapes and HTTP statuses only; no database, no Redis.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, TypedDict

from demo_engine.protocol import text_problem

MODEL_ID = "smollm2-135m-instruct"
MODEL_CREATED = 1730419200  # 2024-11-01, SmolLM2's release
# The same weights as the booth's assistant: answers from the published content, with `sources` in the response.
BOOTH_MODEL_ID = "booth-assistant"
BOOTH_MODEL_CREATED = 1753488000  # 2025-07-26, WAIC 2025's first day
MODEL_IDS = (MODEL_ID, BOOTH_MODEL_ID)
OWNED_BY = "waic-showcase"
MAX_STOP_SEQUENCES = 4  # as OpenAI
# "developer" is OpenAI's newer name for the system role.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class ApiError(Exception):
    """An error answered in OpenAI's format: `{"error": {"message", "type", "param", "code"}}` with a status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.error_type = error_type
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}


def invalid(param: str | None, message: str, *, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


@dataclass
class CompletionRequest:
    """A validated `POST /v1/chat/completions` body."""

    messages: list[dict[str, str]]
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    frequency_penalty: float = 0.0  # OpenAI's definitions, -2..2; 0 (the default) leaves the logits untouched
    presence_penalty: float = 0.0
    logit_bias: dict[str, float] = field(default_factory=dict)  # OpenAI's: token id (as a string) -> -100..100
    model: str = MODEL_ID

    @property
    def grounded(self) -> bool:
        return self.model == BOOTH_MODEL_ID


MAX_LOGIT_BIAS_ENTRIES = 300  # OpenAI's own limit on how many tokens one request may bias


def _logit_bias(value: Any) -> dict[str, float]:
    """OpenAI's `logit_bias`: an object from token ids (strings of digits) to numbers from -100 to 100."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid("logit_bias", "'logit_bias' must be an object mapping token ids to numbers from -100 to 100.")
    if len(value) > MAX_LOGIT_BIAS_ENTRIES:
        raise invalid("logit_bias", f"'logit_bias' may bias at most {MAX_LOGIT_BIAS_ENTRIES} tokens.")
    bias = {}
    for token, number in value.items():
        if not (isinstance(token, str) and token.isascii() and token.isdigit() and len(token) <= 9):
            raise invalid("logit_bias", f"'logit_bias' keys must be token ids (digits), not {token[:20]!r}.")
        if not _is_number(number) or not -100 <= number <= 100:
            raise invalid("logit_bias", f"'logit_bias' values must be numbers from -100 to 100 (token {token}).")
        bias[str(int(token))] = float(number)
    return bias


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _storable(text: str, param: str) -> str:
    problem = text_problem(text)
    if problem is not None:
        raise invalid(param, f"'{param}' {problem}.")
    return text


def _message_content(value: Any, param: str) -> str:
    """A message's text: a string, or a list of `{"type": "text", "text": …}` parts (joined)."""
    if isinstance(value, str):
        return _storable(value, param)
    if isinstance(value, list):
        texts = []
        for index, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise invalid(f"{param}[{index}]", "Only text content parts are supported by this model.")
            texts.append(part["text"])
        return _storable("".join(texts), param)
    raise invalid(param, f"'{param}' must be a string or a list of text parts.")


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise invalid("messages", "'messages' must be a non-empty array of messages.")
    messages = []
    for index, message in enumerate(value):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid(param, f"'{param}' must be an object with 'role' and 'content'.")
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"{param}.role", f"'{param}.role' must be one of system, developer, user, assistant.")
        if role == "assistant" and message.get("content") is None:
            raise invalid(f"{param}.content", "Assistant messages need text content (tool calls are not supported).")
        messages.append({"role": ROLES[role], "content": _message_content(message.get("content"), f"{param}.content")})
    return messages


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(stop, str) and stop for stop in stops):
        raise invalid("stop", "'stop' must be a non-empty string or an array of non-empty strings.")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise invalid("stop", f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences ({len(stops)} given).")
    return [_storable(stop, "stop") for stop in stops]


def parse_completion_request(raw: bytes, *, max_new_tokens_cap: int) -> CompletionRequest:
    """Validate a request body; raise ApiError(400) naming the first wrong field. A larger `max_tokens` than the
    site allows is capped, not refused (finish_reason "length" then says where it stopped)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid(None, "The request body must be JSON.") from None
    except RecursionError:
        raise invalid(None, "The request body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise invalid(None, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "'model' is required: use 'smollm2-135m-instruct' or 'booth-assistant' "
                      "(see GET /v1/models).")  # fmt: skip
    if model not in MODEL_IDS:
        raise ApiError(404, f"The model '{model[:100]}' does not exist. Use '{MODEL_ID}' or '{BOOTH_MODEL_ID}'.",
                       param="model", code="model_not_found")  # fmt: skip
    messages = _messages(body.get("messages"))
    if body.get("n", 1) not in (1, None):
        raise invalid("n", "Only n=1 is supported.")
    for unsupported in ("tools", "functions", "tool_choice", "response_format", "logprobs", "audio"):
        if body.get(unsupported) not in (None, False, [], {}) and body.get(unsupported) != {"type": "text"}:
            raise invalid(unsupported, f"'{unsupported}' is not supported by this model.")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    if max_tokens is None:
        max_tokens = max_new_tokens_cap
    if not _is_whole(max_tokens) or max_tokens < 1:
        raise invalid(param, f"'{param}' must be a whole number ≥ 1.")
    temperature = body.get("temperature")
    temperature = 1.0 if temperature is None else temperature
    if not _is_number(temperature) or not 0 <= temperature <= 2:
        raise invalid("temperature", "'temperature' must be a number from 0 to 2.")
    top_p = body.get("top_p")
    top_p = 1.0 if top_p is None else top_p
    if not _is_number(top_p) or not 0 < top_p <= 1:
        raise invalid("top_p", "'top_p' must be a number greater than 0 and at most 1.")
    penalties = {}
    for name in ("frequency_penalty", "presence_penalty"):
        value = body.get(name)
        value = 0.0 if value is None else value
        if not _is_number(value) or not -2 <= value <= 2:
            raise invalid(name, f"'{name}' must be a number from -2 to 2.")
        penalties[name] = float(value)
    logit_bias = _logit_bias(body.get("logit_bias"))
    seed = body.get("seed")
    if seed is None:
        seed = random.randrange(2**31)
    if not _is_whole(seed) or not 0 <= seed < 2**63:
        raise invalid("seed", "'seed' must be a whole number ≥ 0.")
    stream = body.get("stream")
    stream = False if stream is None else stream
    if not isinstance(stream, bool):
        raise invalid("stream", "'stream' must be true or false.")
    stream_options = body.get("stream_options")
    include_usage = False
    if stream_options is not None:
        if not stream:
            raise invalid("stream_options", "'stream_options' is only allowed when 'stream' is true.")
        if not isinstance(stream_options, dict) or not isinstance(stream_options.get("include_usage", False), bool):
            raise invalid("stream_options", "'stream_options' must be an object like {\"include_usage\": true}.")
        include_usage = stream_options.get("include_usage", False)
    return CompletionRequest(
        messages=messages,
        max_new_tokens=min(max_tokens, max_new_tokens_cap),
        temperature=float(temperature),
        top_p=float(top_p),
        seed=seed,
        stop=_stop(body.get("stop")),
        stream=stream,
        include_usage=include_usage,
        model=model,
        logit_bias=logit_bias,
        **penalties,
    )


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def usage_from_stats(stats: dict | None) -> Usage:
    prompt = (stats or {}).get("prompt_tokens") or 0
    completion = (stats or {}).get("generated_tokens") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def model_object(model_id: str = MODEL_ID) -> dict:
    created = BOOTH_MODEL_CREATED if model_id == BOOTH_MODEL_ID else MODEL_CREATED
    return {"id": model_id, "object": "model", "created": created, "owned_by": OWNED_BY}


def model_list() -> list[dict]:
    return [model_object(model_id) for model_id in MODEL_IDS]


class ApiSource(TypedDict):
    """One source of a `booth-assistant` answer (the response's `sources` field)."""

    title: str
    url: str  # absolute link to the record's public page
    fact: str  # the fact of the record the answer used
    kind: str


def completion_object(*, completion_id: str, created: int, text: str, finish_reason: str, usage: Usage,
                      backend: str, model: str = MODEL_ID, sources: list[ApiSource] | None = None,
                      unsupported_figures: list[str] | None = None) -> dict:  # fmt: skip
    """OpenAI's `chat.completion`; a `booth-assistant` answer adds `sources` and `unsupported_figures` (the figures
    of its text found in none of the sources)."""
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": backend or None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
    }
    if sources is not None:
        body["sources"] = sources
        body["unsupported_figures"] = unsupported_figures or []
    return body


def sources_chunk_object(*, completion_id: str, created: int, model: str, sources: list[ApiSource],
                         unsupported_figures: list[str]) -> dict:  # fmt: skip
    """The streamed `booth-assistant` answer's sources: one chunk without choices, just before `[DONE]`."""
    return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None, "choices": [], "sources": sources,
            "unsupported_figures": unsupported_figures}  # fmt: skip


def chunk_object(*, completion_id: str, created: int, delta: dict, finish_reason: str | None = None,
                 include_usage: bool = False, model: str = MODEL_ID) -> dict:  # fmt: skip
    chunk = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if include_usage:
        chunk["usage"] = None  # OpenAI sends null on every chunk but the last when usage was asked for
    return chunk


def usage_chunk_object(*, completion_id: str, created: int, usage: Usage, model: str = MODEL_ID) -> dict:
    return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None, "choices": [], "usage": usage}  # fmt: skip


def sse_event(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def finish_reason_for(end: dict) -> str:
    """OpenAI's finish_reason from the reply's `end` frame: "stop" (end of turn or a stop sequence), "length"
    (max_tokens, or the site's time limit for one reply), "content_filter" (cut at a blocked phrase)."""
    if end.get("code") == "blocked_phrase":
        return "content_filter"
    if end.get("code") == "time_limit" or end.get("finish_reason") == "length":
        return "length"
    return "stop"


def error_for_failed_reply(end: dict) -> ApiError:
    """The HTTP error for a reply that failed before any text was produced."""
    code = end.get("code") or "engine_error"
    reason = end.get("reason") or "The model failed."
    if code == "prompt_too_long":
        return ApiError(413, reason, param="messages", code="context_length_exceeded")
    if code in ("no_worker", "worker_lost"):
        return ApiError(503, reason, code=code, error_type="server_error", headers={"Retry-After": "5"})
    return ApiError(500, reason, code=code, error_type="server_error")
