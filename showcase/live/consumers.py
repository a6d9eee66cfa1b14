"""`/ws/live/`: the socket live pages subscribe to.

On connect it greets the client (`hello`), then sends two kinds of `update` frames:

- `{"type": "update", "topic": "compare", "payload": {"models": [...], "changed_at": ...}}`: staff saved content
  the comparison shows (published to the "live" group after the transaction commits, see showcase.live.signals);
- `{"type": "update", "topic": "demo", "payload": DemoFigures}`: the chat workers' live figures, read from Redis
  about once a second by a task of this connection (workers publish there; no database query).

Every frame stands on its own (no sequence to resume): a client that reconnects gets a fresh `hello` and the next
figures within a second, which is all it needs to be current again.
"""

import asyncio
import logging
import time
from decimal import Decimal
from typing import TypedDict

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

LIVE_GROUP = "live"
DEMO_TOPIC = "demo"
DEMO_INTERVAL_S = 1.0


class LiveGreeting(TypedDict):
    type: str
    server_time: float
    topics: list[str]
    demo_interval_s: float


class LiveConsumer(AsyncJsonWebsocketConsumer):
    demo_task: asyncio.Task | None = None

    async def connect(self) -> None:
        await self.channel_layer.group_add(LIVE_GROUP, self.channel_name)
        await self.accept()
        greeting: LiveGreeting = {"type": "hello", "server_time": time.time(), "topics": ["compare", DEMO_TOPIC],
                                  "demo_interval_s": DEMO_INTERVAL_S}  # fmt: skip
        await self.send_json(greeting)
        self.demo_task = asyncio.create_task(self.push_demo_figures())

    async def disconnect(self, code: int) -> None:
        if self.demo_task is not None:
            self.demo_task.cancel()
        await self.channel_layer.group_discard(LIVE_GROUP, self.channel_name)

    async def receive_json(self, content: object, **kwargs: object) -> None:
        # Clients only listen on this socket; anything they send is ignored, not an error.
        return None

    async def live_update(self, event: dict) -> None:
        """A `live.update` event from the group: forward its payload unchanged."""
        await self.send_json({"type": "update", "topic": event["topic"], "payload": event["payload"]})

    async def push_demo_figures(self) -> None:
        """Send the demo's figures every second until the socket closes. Redis trouble is reported to the page
        (`available: false`) and retried, never allowed to end the connection."""
        from showcase.live.selectors import demo_figures_read

        price = Decimal(settings.DEMO_HOURLY_PRICE_USD)
        try:
            while True:
                started = time.monotonic()
                try:
                    payload = await demo_figures_read(hourly_price_usd=price)
                except (OSError, RedisError) as exc:
                    payload = {"available": False, "measured_at": time.time(), "reason": type(exc).__name__}
                await self.send_json({"type": "update", "topic": DEMO_TOPIC, "payload": payload})
                await asyncio.sleep(max(0.05, DEMO_INTERVAL_S - (time.monotonic() - started)))
        except asyncio.CancelledError:
            pass
        except Exception:  # the socket closed under us while sending; nothing left to tell
            logger.debug("live figures task ended", exc_info=True)
