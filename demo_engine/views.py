"""The chat page. The conversation itself arrives over the socket; the page only makes sure the browser has a
session, which is where its conversation is kept."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie

from demo_engine import handover, selectors


@ensure_csrf_cookie
def chat_page(request: HttpRequest) -> HttpResponse:
    if not request.session.session_key:
        request.session.save()
    return render(request, "demo_engine/chat.html", {"limits": selectors.chat_limits()})


@never_cache
def chat_continue(request: HttpRequest, token: str) -> HttpResponse:
    """'Continue on your phone': a single-use link moves the conversation into this browser's session, then the
    chat shows it. A used or expired link answers 410, an unknown one 404."""
    if not request.session.session_key:
        request.session.save()
    try:
        conversation = handover.handover_redeem(token=token, session_key=request.session.session_key)
    except handover.HandoverGone:
        return render(request, "demo_engine/handover_gone.html", status=410)
    if conversation is None:
        raise Http404
    request.session["conversation_id"] = str(conversation.id)
    return redirect("chat")
