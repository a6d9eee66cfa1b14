"""Kiosk screens in-process (Django's test client, the real Redis): a secret URL per screen in three languages, its
settings on the page, a reset that gives the browser a new session, and the single-use 'continue on your phone'
link that moves the conversation to another browser."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from demo_engine import handover
from demo_engine import services as chat_services
from demo_engine.models import Conversation
from showcase.kiosk import selectors, services
from showcase.kiosk.models import KioskScreen


@pytest.fixture
def screen(db) -> KioskScreen:
    return services.kiosk_screen_create(name="Hall A, left", idle_seconds=45)


def kiosk_url(screen: KioskScreen) -> str:
    return f"/kiosk/{screen.secret}/"


def kiosk_conversation(client: Client, screen: KioskScreen) -> Conversation:
    """What the chat socket does on a visitor's first message at the kiosk: a conversation of the kiosk's session."""
    client.get(kiosk_url(screen))
    session = client.session
    conversation = chat_services.conversation_start(session_key=session.session_key, language="en",
                                                    kiosk_screen_id=screen.id)  # fmt: skip
    chat_services.chat_message_send(conversation=conversation, text="How big is the model?",
                                    sampling={"seed": 1, "temperature": 0.0, "max_new_tokens": 8})  # fmt: skip
    session["conversation_id"] = str(conversation.id)
    session.save()
    return conversation


def test_create_kiosk_prints_a_url_that_opens_the_screen(db, client):
    """`create_kiosk NAME` creates the screen and prints its secret URL, which opens the kiosk."""
    out = StringIO()
    call_command("create_kiosk", "Booth screen", "--idle-seconds", "30", "--base-url", "http://booth.local:8000",
                 stdout=out, stderr=StringIO())  # fmt: skip
    url = out.getvalue().strip()
    match = re.fullmatch(r"http://booth\.local:8000(/kiosk/[A-Za-z0-9_-]{20,}/)", url)
    assert match, url
    response = client.get(match.group(1))
    assert response.status_code == 200
    assert 'data-idle-ms="30000"' in response.content.decode()
    assert KioskScreen.objects.get().name == "Booth screen"


@pytest.mark.parametrize(("prefix", "text"), [("", "Touch the screen"), ("/fr", "Touchez l’écran"),
                                              ("/zh-hans", "触摸屏幕")])  # fmt: skip
def test_the_kiosk_speaks_each_language(screen, client, prefix, text):
    """The kiosk page exists under each language prefix and reads in that language."""
    response = client.get(prefix + kiosk_url(screen))
    assert response.status_code == 200
    assert text in response.content.decode()


def test_a_wrong_or_revoked_secret_answers_404(screen, client):
    """Only the screen's own secret opens it; once staff revoke it, its URL answers 404."""
    assert client.get("/kiosk/not-the-secret/").status_code == 404
    url = kiosk_url(screen)
    assert client.get(url).status_code == 200
    services.kiosk_screen_revoke(screen=screen)
    assert client.get(url).status_code == 404
    assert client.post(url + "reset/").status_code == 404


def test_the_page_carries_the_screens_settings_and_no_way_off_the_booth(screen, client):
    """Idle time, attract pages and QR come from the screen's record; the page links only to itself in other
    languages."""
    screen.attract_compare = False
    screen.qr_enabled = False
    screen.save()
    body = client.get(kiosk_url(screen)).content.decode()
    assert 'data-idle-ms="45000"' in body and 'data-pages="demo,questions"' in body and 'data-qr="off"' in body
    links = re.findall(r'<a href="([^"]+)"', body)
    assert sorted(links) == sorted([f"/fr/kiosk/{screen.secret}/", f"/zh-hans/kiosk/{screen.secret}/"])


def test_reset_gives_the_screen_a_new_session_without_the_conversation(screen, client):
    """After a reset the browser holds a new session key, and the old conversation belongs to none it can use."""
    conversation = kiosk_conversation(client, screen)
    old_key = client.session.session_key
    response = client.post(kiosk_url(screen) + "reset/")
    assert response.status_code == 200
    new_session = client.session
    assert new_session.session_key != old_key
    assert "conversation_id" not in new_session
    assert new_session[services.SESSION_SCREEN_KEY] == screen.id
    assert handover.conversation_of_session(session_key=new_session.session_key,
                                            conversation_id=str(conversation.id)) is None  # fmt: skip


def test_handover_link_moves_the_conversation_once(screen, client):
    """The QR's link gives a second browser the conversation once; the kiosk loses it; a second use answers 410."""
    conversation = kiosk_conversation(client, screen)
    response = client.post(kiosk_url(screen) + "handover/")
    assert response.status_code == 200
    offer = response.json()
    assert offer["qr"].startswith("data:image/svg+xml") and offer["expires_in_s"] <= 300
    path = re.sub(r"^http://testserver", "", offer["url"])
    assert re.fullmatch(r"/chat/continue/[A-Za-z0-9_-]{20,}/", path)
    assert client.get(kiosk_url(screen) + f"handover/{offer['id']}/").json() == {"used": False}

    phone = Client()
    landed = phone.get(path)
    assert landed.status_code == 302 and landed["Location"] == "/chat/"
    assert phone.session["conversation_id"] == str(conversation.id)
    conversation.refresh_from_db()
    assert conversation.session_key == phone.session.session_key
    assert client.get(kiosk_url(screen) + f"handover/{offer['id']}/").json() == {"used": True}
    assert handover.conversation_of_session(session_key=client.session.session_key,
                                            conversation_id=str(conversation.id)) is None  # fmt: skip

    assert Client().get(path).status_code == 410
    assert Client().get("/chat/continue/never-issued-token-000000000/").status_code == 404


def test_an_older_link_stops_working_once_another_was_used(screen, client):
    """Two codes shown one after the other: once one was used, the other cannot take the conversation back."""
    kiosk_conversation(client, screen)
    first = client.post(kiosk_url(screen) + "handover/").json()["url"].replace("http://testserver", "")
    second = client.post(kiosk_url(screen) + "handover/").json()["url"].replace("http://testserver", "")
    phone = Client()
    assert phone.get(second).status_code == 302
    assert Client().get(first).status_code == 410


def test_an_expired_link_answers_410(screen, client):
    """A link whose few minutes are over no longer moves the conversation."""
    kiosk_conversation(client, screen)
    url = client.post(kiosk_url(screen) + "handover/").json()["url"].replace("http://testserver", "")
    token = url.rstrip("/").rsplit("/", 1)[-1]
    from showcase.core import shared_redis

    shared_redis.client().delete(handover._token_key(token))  # what the key's expiry does
    assert Client().get(url).status_code == 410


def test_no_code_without_a_conversation_or_with_the_qr_off(screen, client):
    """An empty screen gets no code, and a screen whose QR staff turned off never offers one."""
    client.get(kiosk_url(screen))
    assert client.post(kiosk_url(screen) + "handover/").status_code == 409
    kiosk_conversation(client, screen)
    screen.qr_enabled = False
    screen.save()
    assert client.post(kiosk_url(screen) + "handover/").status_code == 404


def test_attract_loop_shows_recent_questions_but_never_hidden_or_flagged_ones(screen, client):
    """Staff can hide a conversation from the attract loop; flagged ones never show."""
    shown = kiosk_conversation(client, screen)
    hidden = kiosk_conversation(Client(), screen)
    flagged = kiosk_conversation(Client(), screen)
    Conversation.objects.filter(pk=shown.pk).update(title="What is an H800?")
    Conversation.objects.filter(pk=hidden.pk).update(title="Something embarrassing", hidden_from_kiosk=True)
    Conversation.objects.filter(pk=flagged.pk).update(title="Something rude", flag_reason="x",
                                                      flagged_at="2026-12-02T00:00:00Z")  # fmt: skip
    assert selectors.recent_questions(screen=screen) == ["What is an H800?"]
    screen.attract_recent = True
    screen.save()
    body = client.get(kiosk_url(screen)).content.decode()
    assert "What is an H800?" in body and "embarrassing" not in body and "rude" not in body


def test_suggested_questions_fall_back_to_the_kiosks_own(db):
    """Without staff's suggested questions (or without that feature), the attract loop still has questions."""
    assert len(selectors.suggested_questions(language="en")) >= 3
    assert "H800 是什么？" in selectors.suggested_questions(language="zh-hans")


@pytest.fixture
def staff_client(client, db):
    from django.contrib.auth.models import User

    user = User.objects.create_user("staff", password="a-long-test-passphrase-42", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def test_staff_set_a_screen_up_and_revoke_it_in_the_admin(staff_client, screen):
    """The screen's page in the admin shows its URL and settings; the revoke action makes the URL answer 404."""
    page = staff_client.get(f"/admin/kiosk/kioskscreen/{screen.pk}/change/").content.decode()
    assert kiosk_url(screen) in page and 'name="idle_seconds" value="45"' in page
    staff_client.post("/admin/kiosk/kioskscreen/", {"action": "revoke", "_selected_action": [screen.pk]})
    assert Client().get(kiosk_url(screen)).status_code == 404


def test_staff_find_flagged_conversations_and_hide_one_from_the_kiosk(staff_client, screen):
    """The conversation list filters on the content filter's flag and shows why; hiding takes one action."""
    flagged = kiosk_conversation(Client(), screen)
    clean = kiosk_conversation(Client(), screen)
    Conversation.objects.filter(pk=flagged.pk).update(title="rude one", flag_reason="Reply 3 cut at 'xyz'",
                                                      flagged_at="2026-12-02T00:00:00Z")  # fmt: skip
    Conversation.objects.filter(pk=clean.pk).update(title="nice one")
    listing = staff_client.get("/admin/demo_engine/conversation/?flagged=yes").content.decode()
    assert "rude one" in listing and "Reply 3 cut at" in listing and "nice one" not in listing
    staff_client.post("/admin/demo_engine/conversation/", {"action": "hide_from_kiosk", "_selected_action": [clean.pk]})
    clean.refresh_from_db()
    assert clean.hidden_from_kiosk is True


def test_staff_manage_blocked_phrases_per_language(staff_client):
    """A phrase added in the admin for French applies to French conversations only."""
    from demo_engine import moderation
    from demo_engine.models import BlockedPhrase

    response = staff_client.post("/admin/demo_engine/blockedphrase/add/", {"phrase": "con", "language": "fr"})
    assert response.status_code == 302 and BlockedPhrase.objects.get().language == "fr"
    assert moderation.blocked_phrases(language="fr") == ["con"] and moderation.blocked_phrases(language="en") == []


def test_the_qr_code_encodes_exactly_the_link(screen, client):
    """The QR image the kiosk shows is the link it prints under it, drawn by the server as SVG."""
    import segno

    kiosk_conversation(client, screen)
    offer = client.post(kiosk_url(screen) + "handover/").json()
    drawn = segno.make(offer["url"], error="m").svg_data_uri(scale=6, border=2, dark="#111", light="#fff")
    assert offer["qr"] == drawn
