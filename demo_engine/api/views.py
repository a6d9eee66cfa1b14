"""`/v1/` views: thin async views under ASGI. Authenticate, rate-limit, validate, start the reply, answer (as JSON
or as server-sent events). Errors are answered in OpenAI's format by `openai_errors`."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from redis.exceptions import RedisError

from demo_engine.api import services, wire
from demo_engine.api.auth import authenticate
from demo_engine.api.completion import CompletionRun
from demo_engine.api.wire import ApiError

logger = logging.getLogger(__name__)


def error_response(error: ApiError) -> JsonResponse:
    response = JsonResponse(error.body(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def openai_errors(view: Callable[..., Awaitable[HttpResponse]]) -> Callable[..., Awaitable[HttpResponse]]:
    """Answer ApiError (and a Redis outage) in OpenAI's error format; CSRF does not apply to key-authenticated
    API calls (no cookies are used), so these views alone are exempt."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return await view(request, *args, **kwargs)
        except ApiError as error:
            return error_response(error)
        except RedisError as exc:
            logger.warning("API request failed, Redis unavailable: %s", exc)
            return error_response(ApiError(503, "The service is briefly unavailable. Try again shortly.",
                                           code="unavailable", error_type="server_error",
                                           headers={"Retry-After": "2"}))  # fmt: skip

    return csrf_exempt(wrapper)


def _require_method(request: HttpRequest, method: str) -> None:
    if request.method != method:
        raise ApiError(405, f"Use {method} for this endpoint.", code="method_not_allowed", headers={"Allow": method})


@openai_errors
async def models_list(request: HttpRequest) -> HttpResponse:
    _require_method(request, "GET")
    await authenticate(request)
    return JsonResponse({"object": "list", "data": wire.model_list()})


@openai_errors
async def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    _require_method(request, "GET")
    await authenticate(request)
    if model_id not in wire.MODEL_IDS:
        raise ApiError(404, f"The model '{model_id[:100]}' does not exist.", param="model", code="model_not_found")
    return JsonResponse(wire.model_object(model_id))


@openai_errors
async def chat_completions(request: HttpRequest) -> HttpResponse:
    _require_method(request, "POST")
    api_key = await authenticate(request)
    retry_after = await database_sync_to_async(services.api_rate_limit_take)(api_key=api_key)
    if retry_after is not None:
        raise ApiError(429, f"Rate limit reached: {api_key.requests_per_minute} requests per minute for this key. "
                       f"Try again in {retry_after} s.", code="rate_limit_exceeded", error_type="requests",
                       headers={"Retry-After": str(retry_after)})  # fmt: skip
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ApiError(413, "The request body is too large.", code="request_too_large") from None
    completion = wire.parse_completion_request(raw, max_new_tokens_cap=settings.CHAT_MAX_NEW_TOKENS)
    run = await CompletionRun.start(api_key=api_key, completion=completion)
    try:
        # Wait for the first text before choosing the status: a prompt the worker refuses is a 413, not a 200.
        first = await run.first_output()
        if first["type"] == "end" and first["status"] == "failed":
            await run.finish()
            raise wire.error_for_failed_reply(first)
        if completion.stream:
            events = run.server_sent_events(first, include_usage=completion.include_usage)
            if completion.grounded:
                events = _with_sources(events, run=run, base_url=request.build_absolute_uri("/"))
            response = StreamingHttpResponse(events, content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"  # a proxy must pass each event on at once
            return response
        end = await run.collect(first)
    except BaseException:
        # The client went away while we waited (Django cancels the view), or something failed: stop the reply.
        await run.abandon()
        raise
    if end["status"] == "failed":
        raise wire.error_for_failed_reply(end)
    usage = wire.usage_from_stats(end["stats"])
    backend = (end["stats"] or {}).get("backend", "")
    sources, unsupported = None, None
    if completion.grounded:
        sources, unsupported = await database_sync_to_async(services.api_reply_sources)(
            message_id=run.message_id, base_url=request.build_absolute_uri("/")
        )
    return JsonResponse(wire.completion_object(completion_id=run.completion_id, created=run.created, text=run.text,
                                               finish_reason=wire.finish_reason_for(end), usage=usage,
                                               backend=backend, model=completion.model, sources=sources,
                                               unsupported_figures=unsupported))  # fmt: skip


async def _with_sources(events: AsyncIterator[bytes], *, run: CompletionRun, base_url: str) -> AsyncIterator[bytes]:
    """A `booth-assistant` stream: the sources chunk goes just before `[DONE]` (the reply is saved by then)."""
    done = wire.sse_event("[DONE]")
    try:
        async for event in events:
            if event == done:
                sources, unsupported = await database_sync_to_async(services.api_reply_sources)(
                    message_id=run.message_id, base_url=base_url
                )
                yield wire.sse_event(wire.sources_chunk_object(completion_id=run.completion_id, created=run.created,
                                                               model=wire.BOOTH_MODEL_ID, sources=sources,
                                                               unsupported_figures=unsupported))  # fmt: skip
            yield event
    finally:
        await events.aclose()
