"""The chat page. The conversation itself arrives over the socket; the page only makes sure the browser has a
session, which is where its conversation is kept."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from demo_engine import selectors


@ensure_csrf_cookie
def chat_page(request: HttpRequest) -> HttpResponse:
    if not request.session.session_key:
        request.session.save()
    return render(request, "demo_engine/chat.html", {"limits": selectors.chat_limits()})
