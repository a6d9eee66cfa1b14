"""Meeting each visitor in their language.

`/` and every public page without a language prefix follow the browser's `Accept-Language` (a French browser lands
on `/fr/…`, a Chinese one on `/zh-hans/…`), unless the visitor chose a language with the switcher: that choice is
the language cookie, and it wins. English, the default language, has no prefix, so only an English choice (or an
English browser) is answered at the unprefixed path itself.

Django's LocaleMiddleware alone answers every unprefixed path in the default language (`prefix_default_language`
is off), hence `LanguageLandingMiddleware`. The redirect is never cached (`Cache-Control: private, no-cache` and
`Vary: Accept-Language, Cookie`), and `variant_of_scope` gives the front page cache (showcase.exhibits.page_cache)
the same language the middleware resolves, so a page rendered for one language is never replayed to a browser
that this middleware would have redirected.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import is_valid_path
from django.utils import translation
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.encoding import escape_uri_path
from django.utils.translation import get_supported_language_variant
from django.utils.translation.trans_real import parse_accept_lang_header

from showcase.core.middleware import HybridMiddleware

# Paths outside the language prefixes: never redirected.
UNPREFIXED_PREFIXES = ("/admin/", "/healthz/", "/v1/", "/static/", "/media/", "/i18n/", "/ws/")


def preferred_language(*, cookie: str | None, accept_language: str) -> str:
    """The visitor's language: the one they chose (the cookie), else the first of the browser's that the site
    speaks, else the default."""
    return _preferred_language(cookie or "", accept_language or "")


# The front page cache asks for every request: a few distinct header values cover nearly every browser.
@functools.lru_cache(maxsize=512)
def _preferred_language(cookie: str, accept_language: str) -> str:
    for candidate in [cookie, *(code for code, _q in parse_accept_lang_header(accept_language))]:
        if not candidate or candidate == "*":
            continue
        try:
            return get_supported_language_variant(candidate.lower())
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


def _scope_header(scope: dict, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def language_of_scope(scope: dict) -> str:
    """The language a socket's or request's visitor wants, from the raw ASGI scope (no Django request needed)."""
    chosen = ""
    prefix = settings.LANGUAGE_COOKIE_NAME + "="
    for part in _scope_header(scope, b"cookie").split(";"):
        part = part.strip()
        if part.startswith(prefix):
            chosen = part[len(prefix) :].strip('"')
            break
    return preferred_language(cookie=chosen, accept_language=_scope_header(scope, b"accept-language"))


def language_of_path(path: str) -> str | None:
    """The language prefix of a path ("/fr/compare/" → "fr"), as i18n_patterns match it, or None."""
    first = path.split("/", 2)[1] if path.startswith("/") else ""
    return first if first in dict(settings.LANGUAGES) else None


def variant_of_scope(scope: dict) -> bytes:
    """For the front page cache's key: the language an unprefixed path answers in for this visitor (b"" for a
    prefixed path, whose language is in the path)."""
    if language_of_path(scope["path"]):
        return b""
    return language_of_scope(scope).encode()


class LanguageLandingMiddleware(HybridMiddleware):
    """Redirect an unprefixed public page to the visitor's language (after LocaleMiddleware)."""

    def finish(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if not language_of_path(request.path_info) and not request.path_info.startswith(UNPREFIXED_PREFIXES):
            patch_vary_headers(response, ("Accept-Language", "Cookie"))
        return response

    def answer_early(self, request: HttpRequest) -> HttpResponse | None:
        path = request.path_info
        if request.method not in ("GET", "HEAD") or path.startswith(UNPREFIXED_PREFIXES):
            return None
        if language_of_path(path):
            return None
        language = preferred_language(cookie=request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME),
                                      accept_language=request.headers.get("Accept-Language", ""))  # fmt: skip
        if language == settings.LANGUAGE_CODE:
            return None
        target = f"/{language}{path}"
        # i18n_patterns resolve only the active language's prefix: ask in the target language.
        with translation.override(language):
            if not is_valid_path(target, getattr(request, "urlconf", None)):
                return None
        query = request.META.get("QUERY_STRING", "")
        response = HttpResponseRedirect(escape_uri_path(target) + (f"?{query}" if query else ""))
        patch_cache_control(response, private=True, no_cache=True)
        return response


def language_choose(request: HttpRequest, code: str) -> HttpResponse:
    """The switcher's link: remember the visitor's choice (the language cookie), then show the page in it."""
    from django.http import Http404
    from django.utils.http import url_has_allowed_host_and_scheme
    from django.utils.translation import check_for_language

    if code not in dict(settings.LANGUAGES) or not check_for_language(code):
        raise Http404
    target = request.GET.get("next", "/")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):  # fmt: skip
        target = "/"
    response = HttpResponseRedirect(target)
    response.set_cookie(settings.LANGUAGE_COOKIE_NAME, code, max_age=settings.LANGUAGE_COOKIE_AGE or 365 * 86400,
                        path=settings.LANGUAGE_COOKIE_PATH, samesite="Lax",
                        secure=settings.SESSION_COOKIE_SECURE)  # fmt: skip
    patch_cache_control(response, private=True, no_cache=True)
    return response
