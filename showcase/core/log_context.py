"""Which request, conversation and reply a log line belongs to, and the JSON lines of `LOG_FORMAT=json`.

The ids live in context variables: the ASGI layer sets the request id (an HTTP request, or a WebSocket for its
whole life), `metrics.reply_queued` the reply and conversation ids when a reply is handed to Celery, and the
Celery signals in `showcase.celery` carry all three in the task's headers to the worker, which sets them again
for the task's thread. Every log record then gets them (`ContextFilter`), so a log shipper can follow one reply
from the socket to the worker and back by `reply_id`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime

IDS = ("request_id", "conversation_id", "reply_id")
_vars = {name: contextvars.ContextVar(name, default=None) for name in IDS}
# A request id a proxy sends (X-Request-ID) is kept when it looks like one; anything else gets a fresh one.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def bind(**values: object) -> None:
    """Set ids for the rest of this context (an ASGI connection's task, a worker thread's task)."""
    for name, value in values.items():
        _vars[name].set(None if value is None else str(value))


def clear() -> None:
    for var in _vars.values():
        var.set(None)


def current() -> dict[str, str]:
    return {name: value for name, var in _vars.items() if (value := var.get()) is not None}


def new_request_id(offered: bytes | None = None) -> str:
    if offered:
        text = offered.decode("latin-1")
        if _SANE_REQUEST_ID.match(text):
            return text
    return uuid.uuid4().hex[:16]


class ContextFilter(logging.Filter):
    """Adds the context's ids to every record (an id given in `extra` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


# What a LogRecord carries of its own; everything else on it came from `extra` and goes into the line.
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids where known, the event's own fields, and
    the traceback as one string (never a second line)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and value is not None:
                line[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False)


class NotReadyIsNotAnErrorFilter(logging.Filter):
    """`django.request` logs every 5xx as an error; a 503 of `/healthz/` is an answer ("not ready yet": `make run`
    polls it while the worker loads the model, a load balancer while a part is down), logged at INFO instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        path = getattr(request, "path", "") or ""
        if getattr(record, "status_code", None) == 503 and path.startswith("/healthz/"):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
