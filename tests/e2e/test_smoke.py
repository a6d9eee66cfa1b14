"""The site runs: real ASGI server, real Celery worker, real Redis, real WebSocket clients."""

import asyncio
import json
import time

import httpx
import pytest
import websockets
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from websockets.exceptions import InvalidStatus

from showcase.core.tasks import ping

pytestmark = [pytest.mark.e2e]


def test_ready_names_every_part(live_stack):
    """/healthz/ready answers 200 and names the database, Redis and a worker once the site is up."""
    status, body = live_stack.get("/healthz/ready")
    parts = json.loads(body)["parts"]
    assert status == 200
    assert set(parts) == {"database", "redis", "worker"}
    assert all(part["ok"] for part in parts.values())


def test_live_check_and_home_page(live_stack):
    """/healthz/live answers 200 and the home page is served with its stylesheet through the ASGI server."""
    assert live_stack.get("/healthz/live")[0] == 200
    status, body = live_stack.get("/")
    assert status == 200
    assert b"WAIC" in body
    stylesheet = body.split(b'rel="stylesheet" href="')[1].split(b'"')[0].decode()
    css_status, css = live_stack.get(stylesheet)
    assert css_status == 200 and b"--accent" in css


def test_a_public_page_seen_before_is_replayed_whole_from_the_cache(live_stack):
    """The second visit to a public page is served from Redis in front of Django: the same page, with the same
    security headers, marked as served by the front cache."""
    first = httpx.get(live_stack.base_url + "/exhibitors/", timeout=10)
    second = httpx.get(live_stack.base_url + "/exhibitors/", timeout=10)
    assert first.status_code == second.status_code == 200
    assert second.headers["x-page-cache"] == "front" and second.content == first.content
    for header in ("content-security-policy", "x-content-type-options", "referrer-policy", "content-language"):
        assert second.headers[header] == first.headers[header]


def test_celery_task_round_trips_over_the_broker(live_stack):
    """A task sent from this process, in the site's Redis namespace, is run by the real worker and its result comes
    back."""
    namespace = {"global_keyprefix": live_stack.redis_prefix}
    client = Celery(broker=live_stack.redis_url, backend=live_stack.redis_url)
    client.conf.broker_transport_options = namespace
    client.conf.result_backend_transport_options = namespace
    result = client.send_task(ping.name, args=["booth"], queue="default")
    assert result.get(timeout=20) == "pong:booth"


def test_live_socket_greets_a_same_origin_client(live_stack):
    """A WebSocket client from the site's own origin is accepted on /ws/live/ and greeted."""

    async def greet() -> dict:
        origin = live_stack.base_url
        async with websockets.connect(f"{live_stack.ws_url}/ws/live/", origin=origin, open_timeout=10) as socket:
            return json.loads(await asyncio.wait_for(socket.recv(), timeout=10))

    assert asyncio.run(greet())["type"] == "hello"


@pytest.mark.slow
def test_live_socket_stays_open_while_idle(live_stack):
    """A live page's socket stays open past the Redis client's 5 s read timeout (nothing tears it down)."""

    async def idle() -> bool:
        origin = live_stack.base_url
        async with websockets.connect(f"{live_stack.ws_url}/ws/live/", origin=origin, open_timeout=10) as socket:
            deadline = time.monotonic() + 7.5  # past the 5 s read timeout, with a margin
            while (left := deadline - time.monotonic()) > 0:
                try:
                    await asyncio.wait_for(socket.recv(), timeout=left)  # live updates may arrive meanwhile
                except TimeoutError:
                    break
            await socket.ping()
            return socket.state.name == "OPEN"

    assert asyncio.run(idle())


def test_live_socket_refuses_a_foreign_origin(live_stack):
    """A WebSocket handshake from another site's origin is refused with 403."""

    async def connect() -> None:
        async with websockets.connect(f"{live_stack.ws_url}/ws/live/", origin="http://evil.example", open_timeout=10):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(connect())
    assert refused.value.response.status_code == 403


def test_ready_turns_503_naming_the_worker_when_it_stops(live_stack):
    """When the only worker stops, readiness says 503 and names the worker within a few seconds; back to 200 after."""
    live_stack.stop_worker()
    try:
        deadline = time.monotonic() + 5
        status, body = live_stack.get("/healthz/ready")
        while status != 503 and time.monotonic() < deadline:
            time.sleep(0.2)
            status, body = live_stack.get("/healthz/ready")
        assert status == 503
        assert json.loads(body)["down"] == ["worker"]
    finally:
        live_stack.start_worker()
        live_stack.wait_ready()


def test_a_task_outside_the_sites_namespace_is_never_taken(live_stack):
    """Another site's task on the same Redis (no namespace, or another one) is not run by this site's worker."""
    client = Celery(broker=live_stack.redis_url, backend=live_stack.redis_url)
    client.conf.broker_transport_options = {"global_keyprefix": "another-site:"}
    client.conf.result_backend_transport_options = {"global_keyprefix": "another-site:"}
    result = client.send_task(ping.name, args=["stranger"], queue="default", expires=30)
    with pytest.raises(CeleryTimeoutError):
        result.get(timeout=5)
    result.forget()
