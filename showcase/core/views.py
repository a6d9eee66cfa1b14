"""Health checks. Views stay thin: the checks live in selectors."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from showcase.core import selectors


@never_cache
def health_live(request: HttpRequest) -> HttpResponse:
    """200 while the process serves requests; checks nothing else."""
    return JsonResponse({"status": "alive"})


@never_cache
def health_ready(request: HttpRequest) -> HttpResponse:
    """200 when the database, Redis and at least one worker answer; else 503 naming what is down."""
    parts = selectors.readiness()
    down = [name for name, part in parts.items() if not part["ok"]]
    body = {"status": "ready" if not down else "unavailable", "down": down, "parts": parts}
    return JsonResponse(body, status=200 if not down else 503)
