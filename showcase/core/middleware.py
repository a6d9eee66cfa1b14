"""Headers every response carries: a Content-Security-Policy without inline scripts, and the permissions
policy. (X-Content-Type-Options, Referrer-Policy and HSTS come from Django's SecurityMiddleware.)"""

from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

# Scripts only from our own origin: no inline scripts, no eval, no CDN. Inline *styles* stay allowed because
# the Django admin sets style attributes; styles cannot run code.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class HybridMiddleware:
    """The base of the site's middleware, sync and async: under Daphne the whole chain stays async, with no hop to a
    thread per request. A subclass overrides `answer_early` (a response that skips the view) and/or `finish` (what
    every response, early or the view's, goes through)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        early = self.answer_early(request)
        if iscoroutinefunction(self):
            return self._acall(request, early)
        return self.finish(request, early or self.get_response(request))

    async def _acall(self, request: HttpRequest, early: HttpResponse | None) -> HttpResponse:
        return self.finish(request, early or await self.get_response(request))

    def answer_early(self, request: HttpRequest) -> HttpResponse | None:
        return None

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response


class SecurityHeadersMiddleware(HybridMiddleware):
    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


class ViewNameMiddleware(HybridMiddleware):
    """Tells the ASGI layer which view answered (its URL name), for the metrics' `view` label: written into the
    request's ASGI scope, which the layers outside Django share (see showcase.core.observe)."""

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        scope = getattr(request, "scope", None)
        if scope is not None and request.resolver_match is not None:
            scope["showcase.view"] = request.resolver_match.view_name or "unnamed"
