"""The engine inside a worker process: loaded once (after the fork, in the process that runs the tasks) and
shared by the threads of the pool, so concurrent chats share the engine's continuous batching. A presence
thread tells the site every second that this worker is alive, with its live figures.

This module knows Celery's worker signals and Redis; the engine itself knows neither.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)

_engine = None
_engine_lock = threading.Lock()
_engine_error: str | None = None
_presence_thread: threading.Thread | None = None
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"


def engine_options() -> dict:
    return {
        "fp32": settings.ENGINE_FP32,
        "device": settings.ENGINE_DEVICE,
        "max_batch": settings.ENGINE_MAX_BATCH,
        "threads": settings.ENGINE_THREADS,
    }


def get_engine():
    """The process's engine, loaded and started on first use (thread-safe)."""
    global _engine, _engine_error
    if _engine is not None:
        return _engine
    with _engine_lock:
        if _engine is None:
            from demo_engine.engine import Engine

            started = time.monotonic()
            try:
                engine = Engine.load(**engine_options())
                engine.start()
            except Exception as exc:
                _engine_error = f"{type(exc).__name__}: {exc}"
                raise
            logger.info("engine loaded in %.1f s (%s)", time.monotonic() - started, engine_options())
            _engine = engine
    return _engine


def engine_figures() -> dict:
    """Live figures of this worker's engine, for the site's live panel."""
    figures: dict = {"worker": WORKER_NAME, "engine_loaded": _engine is not None, "engine_error": _engine_error}
    if _engine is not None and hasattr(_engine, "live_figures"):
        try:
            figures.update(_engine.live_figures())
            figures["backend"] = _engine.backend  # e.g. "CPU · int4 bf16", as each reply's stats say
        except Exception:  # figures are best effort; a failure here must never stop the presence beat
            logger.exception("engine.live_figures failed")
    return figures


def _presence_loop() -> None:
    from demo_engine import reply_stream

    while True:
        try:
            reply_stream.worker_presence_publish(worker_name=WORKER_NAME, figures=engine_figures())
        except Exception as exc:  # Redis restarting: keep beating, it comes back
            logger.warning("presence beat failed: %s", exc)
        time.sleep(1.0)


def start_worker_runtime(*, preload: bool = True) -> None:
    """Start the presence beat and, in the background, load the engine so the first chat does not wait for it."""
    global _presence_thread
    if _presence_thread is not None:
        return
    _presence_thread = threading.Thread(target=_presence_loop, name="worker-presence", daemon=True)
    _presence_thread.start()
    if preload:
        threading.Thread(target=_preload, name="engine-preload", daemon=True).start()


def _preload() -> None:
    try:
        get_engine()
    except Exception:
        logger.exception("the engine failed to load; replies will fail with the reason")
