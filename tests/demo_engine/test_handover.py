"""'Continue on your phone' seen from the chat socket: once a conversation was handed over, the socket that held it
(the kiosk's, still open) can neither write to it nor read it again."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.sessions.backends.db import SessionStore

from demo_engine import handover, services
from demo_engine.models import Conversation, Message
from tests.demo_engine.test_consumers import open_socket_with_greeting

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_handed_over_conversation_leaves_the_kiosks_open_socket(monkeypatch):
    """After the phone took the conversation, the kiosk's next message starts a new one, and the old reply cannot
    be resumed from the kiosk."""
    monkeypatch.setattr(services, "workers_may_be_alive", lambda: False)  # replies fail at once: no worker needed
    kiosk = await sync_to_async(SessionStore)()
    await sync_to_async(kiosk.create)()
    socket, _hello = await open_socket_with_greeting(f"sessionid={kiosk.session_key}")
    await socket.send_json_to({"type": "send", "text": "first question"})
    _question, reply, _end = [await socket.receive_json_from(timeout=10) for _ in range(3)]
    conversation = await Conversation.objects.aget()

    offer = await sync_to_async(handover.handover_create)(conversation=conversation)
    moved = await sync_to_async(handover.handover_redeem)(token=offer.token, session_key="phone-session")
    assert moved.id == conversation.id

    await socket.send_json_to({"type": "send", "text": "second question"})
    for _ in range(3):
        await socket.receive_json_from(timeout=10)
    await socket.send_json_to({"type": "resume", "message_id": reply["message"]["id"], "after_seq": 0})
    error = await socket.receive_json_from(timeout=10)
    await socket.disconnect()
    assert error["code"] == "not_found"
    texts = [m.content async for m in Message.objects.filter(conversation=conversation, role="user")]
    assert texts == ["first question"]
    assert await Conversation.objects.filter(session_key=kiosk.session_key).acount() == 1
