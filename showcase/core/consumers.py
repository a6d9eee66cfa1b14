"""`/ws/live/`: the socket live pages subscribe to. It greets the client, then forwards `live.update` events."""

import time
from typing import TypedDict

from channels.generic.websocket import AsyncJsonWebsocketConsumer

LIVE_GROUP = "live"


class LiveGreeting(TypedDict):
    type: str
    server_time: float


class LiveConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(LIVE_GROUP, self.channel_name)
        await self.accept()
        greeting: LiveGreeting = {"type": "hello", "server_time": time.time()}
        await self.send_json(greeting)

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(LIVE_GROUP, self.channel_name)

    async def receive_json(self, content: object, **kwargs: object) -> None:
        # Clients only listen on this socket; anything they send is ignored, not an error.
        return None

    async def live_update(self, event: dict) -> None:
        """A `live.update` event from the group: forward its payload unchanged."""
        await self.send_json({"type": "update", "topic": event["topic"], "payload": event["payload"]})
