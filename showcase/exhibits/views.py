"""Public exhibit pages. Thin: read through selectors, render a template; cached whole (see page_cache)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from showcase.exhibits import selectors
from showcase.exhibits.page_cache import cached_public_page

# Pages other parts of the project provide (the chat, the comparison); the home page links to the first name
# that exists, and leaves the link out until one does.
CHAT_URL_NAMES = ("demo_engine:chat", "chat")
COMPARE_URL_NAMES = ("exhibits:compare", "compare", "live:compare")


def _first_url(names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return None


@cached_public_page
def home(request: HttpRequest) -> HttpResponse:
    context = {
        "conference": selectors.conference_current(),
        "featured_products": selectors.product_featured_list(),
        "chat_url": _first_url(CHAT_URL_NAMES),
        "compare_url": _first_url(COMPARE_URL_NAMES),
    }
    return render(request, "exhibits/home.html", context)


@cached_public_page(query=("q", "country", "category", "page"))
def exhibitor_list(request: HttpRequest) -> HttpResponse:
    filters = selectors.DirectoryFilters(
        query=request.GET.get("q", "").strip()[:100],
        country=request.GET.get("country", "").strip()[:100],
        category=request.GET.get("category", "").strip()[:100],
    )
    page = selectors.exhibitor_directory(filters=filters, page_number=request.GET.get("page"))
    # Pagination links keep the filters; built here so the template does not re-encode the query string.
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "filters": filters,
        "filter_query": query.urlencode(),
        "countries": selectors.exhibitor_country_list(),
        "categories": selectors.category_list(),
    }
    return render(request, "exhibits/exhibitor_list.html", context)


@cached_public_page
def exhibitor_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return render(request, "exhibits/exhibitor_detail.html", {"exhibitor": selectors.exhibitor_detail(slug=slug)})


@cached_public_page
def ai_system_list(request: HttpRequest) -> HttpResponse:
    context = {"systems": selectors.ai_system_list(), "hardware_list": selectors.hardware_list()}
    return render(request, "exhibits/ai_system_list.html", context)


@cached_public_page
def ai_system_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return render(request, "exhibits/ai_system_detail.html", {"system": selectors.ai_system_detail(slug=slug)})


@cached_public_page
def startup_list(request: HttpRequest) -> HttpResponse:
    context = {"startups": selectors.startup_list(), "investors": selectors.investor_list()}
    return render(request, "exhibits/startup_list.html", context)


@cached_public_page
def pitch_schedule(request: HttpRequest) -> HttpResponse:
    context = {"pitches": selectors.pitch_schedule(), "conference": selectors.conference_current()}
    return render(request, "exhibits/pitch_schedule.html", context)
