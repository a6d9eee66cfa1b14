"""Events for open live pages: after exhibit content changes and commits, tell every `/ws/live/` socket.

Zulip's shape: the admin (or any service) changes state; once the transaction commits, this emits one event. The
event says what changed, not the new figures: each page fetches itself again in its own language and settings,
so the numbers are always rendered, formatted and sourced by the same code as a first visit.
"""

import logging
import time
from typing import TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from showcase.live.consumers import LIVE_GROUP

logger = logging.getLogger(__name__)

TOPIC_COMPARE = "compare"


class ContentChanged(TypedDict):
    models: list[str]
    changed_at: float


def live_update_publish(*, topic: str, payload: dict) -> bool:
    """Send a `live.update` event to every live socket; False (and a log line) when the channel layer is down.

    An admin save must never fail because Redis is restarting: the page still shows the change on its next load.
    """
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        async_to_sync(layer.group_send)(LIVE_GROUP, {"type": "live.update", "topic": topic, "payload": payload})
    except Exception:
        logger.warning("could not publish a live update (%s)", topic, exc_info=True)
        return False
    return True


def content_changed_publish(*, models: list[str]) -> bool:
    payload: ContentChanged = {"models": sorted(set(models)), "changed_at": time.time()}
    return live_update_publish(topic=TOPIC_COMPARE, payload=payload)
