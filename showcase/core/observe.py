"""The outermost ASGI layer: a request id for every HTTP request and WebSocket, every HTTP answer counted and timed
by view (pages the front cache replays included), open WebSockets counted, and `/metrics` served.

Why in front of everything: most public pages never reach Django (`PageCacheFront` replays them), so a Django
middleware would count a fraction of the traffic; and `/metrics` answers even when Django cannot.
"""

from __future__ import annotations

import asyncio
import logging
import time

from django.conf import settings

from showcase.core import log_context, metrics

access_logger = logging.getLogger("showcase.access")

METRICS_PATH = "/metrics"
WEBSOCKET_PATHS = ("/ws/chat/", "/ws/live/")
# Requests that never reach a view: named by where they went.
STATIC_PREFIXES = {"/static/": "static", "/media/": "media"}


def fallback_view(path: str) -> str:
    for prefix, name in STATIC_PREFIXES.items():
        if path.startswith(prefix):
            return name
    return "unmatched"


class ObservabilityMiddleware:
    def __init__(self, app) -> None:
        self.app = app
        # With JSON logs Daphne's plain access log is off (showcase.launcher.web_command): each request is logged here.
        self.access_log = settings.LOG_FORMAT == "json"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope, receive, send) -> None:
        headers = dict(scope.get("headers", []))
        request_id = log_context.new_request_id(headers.get(b"x-request-id"))
        log_context.bind(request_id=request_id, conversation_id=None, reply_id=None)
        if scope["path"] == METRICS_PATH:
            await self._metrics(scope, headers, send)
            return
        started = time.perf_counter()
        status = 500  # what the visitor gets if the application fails before answering
        recorded = False

        async def observed_send(message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False) and not recorded:
                recorded = True
                self._record(scope, status, started)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            if not recorded:  # the application failed, or the client went away mid-answer
                self._record(scope, status, started)

    def _record(self, scope, status: int, started: float) -> None:
        view = scope.get("showcase.view") or fallback_view(scope["path"])
        seconds = time.perf_counter() - started
        metrics.http_request(view=view, method=scope["method"], status=status, seconds=seconds)
        if self.access_log:
            client = scope.get("client")
            access_logger.info("%s %s %s", scope["method"], scope["path"], status,
                               extra={"event": "http.request", "method": scope["method"], "path": scope["path"],
                                      "status": status, "view": view, "duration_ms": round(seconds * 1000, 2),
                                      "client": client[0] if client else None})  # fmt: skip

    async def _websocket(self, scope, receive, send) -> None:
        headers = dict(scope.get("headers", []))
        log_context.bind(request_id=log_context.new_request_id(headers.get(b"x-request-id")), conversation_id=None,
                         reply_id=None)  # fmt: skip
        path = scope["path"] if scope["path"] in WEBSOCKET_PATHS else "other"
        accepted = closed = False

        def count_closed() -> None:
            # Once the socket is closed, by either side, not when its consumer ends: a consumer waiting in
            # channels-redis's receive can outlive its socket by seconds (up to Daphne's 10 s allowance).
            nonlocal closed
            if accepted and not closed:
                closed = True
                metrics.websocket_closed(path=path)

        async def observed_receive():
            message = await receive()
            if message["type"] == "websocket.disconnect":
                count_closed()
            return message

        async def observed_send(message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                metrics.websocket_opened(path=path)
            await send(message)
            if message["type"] == "websocket.close":
                count_closed()

        try:
            await self.app(scope, observed_receive, observed_send)
        finally:
            count_closed()

    @staticmethod
    async def _metrics(scope, headers: dict, send) -> None:
        client = scope.get("client")
        allowed = metrics.scrape_allowed(authorization=headers.get(b"authorization", b"").decode("latin-1"),
                                         client_address=client[0] if client else None)  # fmt: skip
        if scope["method"] not in ("GET", "HEAD"):
            status, body, content_type, extra = 405, b"GET only\n", b"text/plain", [(b"allow", b"GET, HEAD")]
        elif not allowed:
            body = b"/metrics needs Authorization: Bearer <METRICS_TOKEN>, or a scraper in METRICS_ALLOWED_ADDRESSES\n"
            status, content_type, extra = 401, b"text/plain", [(b"www-authenticate", b'Bearer realm="metrics"')]
        else:
            # Reading every process's files and Redis blocks: off the event loop.
            body = await asyncio.get_running_loop().run_in_executor(None, metrics.render)
            status, content_type, extra = 200, metrics.CONTENT_TYPE.encode(), []
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type), (b"cache-control", b"no-store"), *extra]})  # fmt: skip
        await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})
