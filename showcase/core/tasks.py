"""Housekeeping tasks on the default queue."""

from celery import shared_task


@shared_task(name="showcase.core.tasks.ping")
def ping(payload: str) -> str:
    """Echo a payload: proves that a task round-trips through the broker, a worker and the result backend."""
    return f"pong:{payload}"
