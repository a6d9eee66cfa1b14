"""A client of the chat socket (`/ws/chat/`), as another program would write it from the README's protocol.
Used by `demo_engine.chatbench` and by the end-to-end tests. Knows HTTP and WebSockets, nothing of Django."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import httpx
import websockets


@dataclass
class ReplyResult:
    """What a client saw of one reply: its frames in arrival order and its timings."""

    message_id: int
    frames: list[dict] = field(default_factory=list)
    sent_at: float = 0.0
    first_delta_at: float | None = None
    ended_at: float | None = None

    @property
    def text(self) -> str:
        return "".join(frame["text"] for frame in self.frames if frame["type"] == "delta")

    @property
    def end(self) -> dict | None:
        return next((frame for frame in self.frames if frame["type"] == "end"), None)

    @property
    def seqs(self) -> list[int]:
        return [frame["seq"] for frame in self.frames if frame.get("seq", 0) > 0]

    @property
    def client_ttft_s(self) -> float | None:
        return None if self.first_delta_at is None else self.first_delta_at - self.sent_at

    @property
    def client_tokens_per_s(self) -> float | None:
        """Tokens after the first, over the time from the first delta to the end (the engine's decode rate)."""
        deltas = [frame for frame in self.frames if frame["type"] == "delta"]
        if len(deltas) < 2 or self.ended_at is None or self.first_delta_at is None:
            return None
        elapsed = self.ended_at - self.first_delta_at
        tokens = deltas[-1]["tokens"] - deltas[0]["tokens"]
        return tokens / elapsed if elapsed > 0 else None


class ChatSocketClient:
    """One browser-like visitor: a session cookie from `/chat/`, then the socket."""

    def __init__(self, base_url: str, *, cookie: str | None = None, origin: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.cookie = cookie
        self.origin = origin or self.base_url
        self.socket = None
        self.hello: dict = {}

    async def __aenter__(self) -> ChatSocketClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> dict:
        if self.cookie is None:
            async with httpx.AsyncClient() as http:
                response = await http.get(f"{self.base_url}/chat/", timeout=30)
                response.raise_for_status()
                self.cookie = "; ".join(f"{name}={value}" for name, value in response.cookies.items())
        ws_url = self.base_url.replace("http://", "ws://").replace("https://", "wss://") + "/ws/chat/"
        self.socket = await websockets.connect(
            ws_url, origin=self.origin, additional_headers={"Cookie": self.cookie}, open_timeout=30, max_size=2**22
        )
        self.hello = await self.recv(timeout=30)
        return self.hello

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
            self.socket = None

    async def send(self, frame: dict) -> None:
        await self.socket.send(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.socket.send(data)

    async def recv(self, timeout: float = 60) -> dict:
        return json.loads(await asyncio.wait_for(self.socket.recv(), timeout=timeout))

    async def recv_until(self, predicate, timeout: float = 60) -> list[dict]:
        """Frames up to and including the first one that satisfies `predicate`."""
        frames, deadline = [], time.monotonic() + timeout
        while True:
            frame = await self.recv(timeout=max(0.01, deadline - time.monotonic()))
            frames.append(frame)
            if predicate(frame):
                return frames

    async def ask(self, text: str, *, options: dict | None = None, timeout: float = 120) -> ReplyResult:
        """Send a question and follow its reply to the end."""
        sent_at = time.monotonic()
        frame: dict = {"type": "send", "text": text}
        if options:
            frame["options"] = options
        await self.send(frame)
        return await self.follow_reply(sent_at=sent_at, timeout=timeout)

    async def follow_reply(self, *, sent_at: float, timeout: float = 120) -> ReplyResult:
        deadline = sent_at + timeout
        result: ReplyResult | None = None
        while True:
            frame = await self.recv(timeout=max(0.01, deadline - time.monotonic()))
            if frame["type"] == "error":
                raise ChatError(frame)
            if result is None:
                if frame["type"] == "message" and frame["message"]["role"] == "assistant":
                    result = ReplyResult(message_id=frame["message"]["id"], sent_at=sent_at)
                continue
            if frame.get("message_id") != result.message_id:
                continue
            result.frames.append(frame)
            if frame["type"] == "delta" and result.first_delta_at is None:
                result.first_delta_at = time.monotonic()
            if frame["type"] == "end":
                result.ended_at = time.monotonic()
                return result


class ChatError(Exception):
    """The server answered with an error frame."""

    def __init__(self, frame: dict) -> None:
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.frame = frame
