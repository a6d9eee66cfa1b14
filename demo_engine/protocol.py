"""The frames of the chat socket (`/ws/chat/`), as typed dictionaries. The README documents them for clients.

Client → server: `send`, `stop`, `regenerate`, `new_conversation`, `resume`, `ping`.
Server → client: `hello`, `message`, `status`, `delta`, `sources`, `end`, `error`, `pong`.
Reply frames (`status`, `delta`, `sources`, `end`) carry the reply's `message_id` and a `seq` that grows by one per
frame of that reply, so a client can tell a gap and resume after the last `seq` it has.
"""

import re
from typing import Literal, NotRequired, TypedDict


class ReplyStats(TypedDict):
    prompt_tokens: int | None
    generated_tokens: int | None
    time_to_first_token_ms: float | None
    tokens_per_second: float | None
    backend: str
    dropped_turns: int


class SourceCard(TypedDict):
    title: str
    url: str  # the record's public page
    fact: str  # the one fact of the record the reply used
    kind: str  # "exhibitor", "product", "pitch", "aisystem", …


class MessagePayload(TypedDict):
    id: int
    role: Literal["user", "assistant"]
    content: str
    status: str
    status_label: str
    failure_reason: str
    stats: ReplyStats | None
    grounded: bool
    sources: list[SourceCard]
    unsupported_figures: list[str]  # figures of `content` found in none of the sources, as written


class StatusFrame(TypedDict):
    type: Literal["status"]
    message_id: int
    seq: int
    status: str
    queue_position: NotRequired[int]


class DeltaFrame(TypedDict):
    type: Literal["delta"]
    message_id: int
    seq: int
    text: str
    tokens: int  # tokens generated so far, this delta included


class SourcesFrame(TypedDict):
    """A booth-assistant reply's sources: once before its first delta (what it was given), once after its last
    (checked: the fact each source backs, and the figures of the text found in none of them)."""

    type: Literal["sources"]
    message_id: int
    seq: int
    sources: list[SourceCard]
    unsupported_figures: list[str]
    checked: bool  # False before the text exists, True once its figures were checked
    found: bool  # False when nothing published was relevant (the reply says so and points to the directory)


class EndFrame(TypedDict):
    type: Literal["end"]
    message_id: int
    seq: int
    status: Literal["done", "stopped", "failed"]
    reason: str
    code: str  # machine-readable reason: "", "no_worker", "worker_lost", "prompt_too_long", "engine_error"…
    finish_reason: str  # the engine's: "stop", "length", "cancelled", or "" when it never ran
    stats: ReplyStats | None
    length: int  # characters of the saved reply: a client whose deltas add up to fewer has missed some


class ErrorFrame(TypedDict):
    type: Literal["error"]
    code: str
    message: str
    retry_after: NotRequired[int]


def error_frame(code: str, message: str, *, retry_after: int | None = None) -> ErrorFrame:
    frame: ErrorFrame = {"type": "error", "code": code, "message": message}
    if retry_after is not None:
        frame["retry_after"] = retry_after
    return frame


# A lone surrogate cannot be encoded as UTF-8 (SQLite refuses it); PostgreSQL cannot store a NUL character in text.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why a visitor's or a client's text cannot be accepted as it is, or None. Every text that is saved passes
    here first, so nothing reaches the database that it cannot store."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character"
    return "contains a lone surrogate (not valid Unicode)"
