"""Who may start a reply now: the guards that the chat socket and the HTTP API share, one wording per situation.

- Rate: a counter per minute per browser session (chat) or per API key, in Redis, shared by every web process.
- Fairness per client address (chat socket): at most `CHAT_MAX_IN_FLIGHT_PER_ADDRESS` replies queued or being
  written for one address, so that one client opening many cookieless sockets cannot fill the queue. Counted in
  Redis (a sorted set of reply tokens per address, released when the reply ends). Behind a proxy the address comes
  from `CLIENT_ADDRESS_HEADER`; behind a venue's NAT every visitor shares one address: raise the cap (README).
- The whole queue: at most `CHAT_MAX_QUEUED` replies waiting for a worker, across the site.
- No worker: the wording, shared by the socket (a failed reply) and the API (a 503).

Knows Redis (through `reply_stream`'s namespace) and settings; callers turn `Refused` into their own error format.
"""

from __future__ import annotations

import time
import uuid

from django.conf import settings

from demo_engine import selectors
from showcase.core import shared_redis

NO_WORKER_MESSAGE = "The model is unavailable right now: no worker is running."
BUSY_MESSAGE = "The model is busy right now. Please try again in a few seconds."
BUSY_RETRY_AFTER_S = 5


class Refused(Exception):
    """A reply that may not start now, with a machine-readable code and the words a person reads."""

    def __init__(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def _window_take(*parts: object, limit: int) -> int | None:
    """Count one against a per-minute window; the seconds until the window ends when the limit is passed."""
    now = time.time()
    key = shared_redis.key("rate", *parts, int(now // 60))
    pipe = shared_redis.client().pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, 61)
    count, _ = pipe.execute()
    if count > limit:
        return max(1, 60 - int(now % 60))
    return None


def chat_rate_take(*, session_key: str) -> None:
    """One message of a browser session; refused past `CHAT_RATE_LIMIT_PER_MINUTE`."""
    retry_after = _window_take("chat", session_key, limit=settings.CHAT_RATE_LIMIT_PER_MINUTE)
    if retry_after is not None:
        raise Refused("rate_limited", f"Too many messages: try again in {retry_after} s.", retry_after=retry_after)


def api_rate_take(*, api_key_id: int, requests_per_minute: int) -> int | None:
    """One request of an API key; the seconds to wait when its per-minute limit is reached, else None."""
    return _window_take("api", api_key_id, limit=requests_per_minute)


def queue_has_room() -> None:
    """Refuse a new reply while `CHAT_MAX_QUEUED` replies already wait for a worker."""
    if selectors.queued_reply_count() >= settings.CHAT_MAX_QUEUED:
        raise Refused("busy", BUSY_MESSAGE, retry_after=BUSY_RETRY_AFTER_S)


# Replies in flight per client address ----------------------------------------------------------------------------


def _address_key(address: str) -> str:
    return shared_redis.key("inflight", "address", address)


def _owner_key(token: str) -> str:
    return shared_redis.key("inflight", "reply", token)


def _entry_lifetime_s() -> int:
    # An entry whose reply never ended (a site killed mid-reply) stops counting after the longest a reply can live.
    return settings.CHAT_TASK_EXPIRES_S + settings.CHAT_GENERATION_TIME_LIMIT_S + 60


def address_admit(*, address: str) -> str:
    """Reserve one of the address's in-flight places; returns the stream token the new reply must carry (its place
    is released when that reply ends). Refused when the address already has its cap of replies in flight."""
    token = uuid.uuid4().hex
    now = time.time()
    lifetime = _entry_lifetime_s()
    key = _address_key(address)
    pipe = shared_redis.client().pipeline(transaction=True)
    pipe.zremrangebyscore(key, "-inf", now - lifetime)
    pipe.zadd(key, {token: now})
    pipe.zcard(key)
    pipe.expire(key, lifetime)
    pipe.set(_owner_key(token), address, ex=lifetime)
    in_flight = pipe.execute()[2]
    if in_flight > settings.CHAT_MAX_IN_FLIGHT_PER_ADDRESS:
        address_release(token=token)
        raise Refused("too_many_from_address", "Too many replies are being written for your network right now. "
                      "Please wait for one to finish.", retry_after=BUSY_RETRY_AFTER_S)  # fmt: skip
    return token


def address_release(*, token: str) -> None:
    client = shared_redis.client()
    address = client.get(_owner_key(token))
    if address is None:
        return
    pipe = client.pipeline(transaction=False)
    pipe.zrem(_address_key(address.decode()), token)
    pipe.delete(_owner_key(token))
    pipe.execute()


def reply_released(*, reply) -> None:
    """A reply ended: give back its address's place (replies that never took one, like the API's, have none)."""
    address_release(token=reply.token)


def address_from_scope(scope: dict) -> str:
    """The client's address: the last entry of `CLIENT_ADDRESS_HEADER` when the site runs behind a proxy that sets
    it (the entry that proxy added, which a client cannot forge), else the connection's peer."""
    header = settings.CLIENT_ADDRESS_HEADER.lower().encode()
    if header:
        for name, value in scope.get("headers", []):
            if name == header:
                entries = [entry.strip() for entry in value.decode("latin-1").split(",") if entry.strip()]
                if entries:
                    return entries[-1][:64]
    client = scope.get("client") or ("unknown", 0)
    return str(client[0])[:64]
