"""The comparison page. Thin: the selector computes, the template renders; cached whole like the exhibit pages
(every content save invalidates it, see showcase.exhibits.page_cache)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from showcase.exhibits.page_cache import cached_public_page
from showcase.live import selectors


@cached_public_page(query=("a", "b", "hw", "price", "util"))
def compare(request: HttpRequest) -> HttpResponse:
    page = selectors.comparison_page(query=request.GET)
    context = {"page": page, "demo_hourly_price_usd": settings.DEMO_HOURLY_PRICE_USD}
    return render(request, "live/compare.html", context)
