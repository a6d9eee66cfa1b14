"""Celery tasks of the booth's index, on the `default` queue. Thin: take ids, call the service."""

import threading

from celery import shared_task
from celery.signals import worker_ready

from demo_engine.booth import index


@worker_ready.connect
def _load_embedder_early(**_kwargs: object) -> None:
    # The embedding model (0.1 s, 90 MB) loads once per worker process; in the background, so the first question
    # or the first save does not wait for it.
    from demo_engine.booth.embedding import get_embedder

    threading.Thread(target=get_embedder, name="embedder-preload", daemon=True).start()


@shared_task(name="demo_engine.booth.tasks.index_records", ignore_result=True, queue="default")
def index_records(keys: list[list]) -> None:
    """Bring each `(kind, pk)` record's passage up to date (indexed when public, removed otherwise)."""
    for kind, pk in keys:
        index.record_index(kind=kind, pk=pk)
