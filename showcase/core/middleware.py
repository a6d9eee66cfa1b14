"""Headers every response carries: a Content-Security-Policy without inline scripts, and the permissions
policy. (X-Content-Type-Options, Referrer-Policy and HSTS come from Django's SecurityMiddleware.)"""

from collections.abc import Callable

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


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response
