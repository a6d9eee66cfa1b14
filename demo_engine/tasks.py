"""Celery tasks of the chat, on the `inference` queue. Thin: take an id, call the service."""

from celery import shared_task
from celery.signals import worker_ready

from demo_engine import generation, runtime


@worker_ready.connect
def _on_worker_ready(**_kwargs: object) -> None:
    # With the threads pool the tasks run in this process: the engine loads here, once, after start-up.
    runtime.start_worker_runtime()


@shared_task(name="demo_engine.tasks.generate_reply", ignore_result=True)
def generate_reply(message_id: int, stream_token: str) -> None:
    """Generate the reply `message_id` (named `stream_token` in Redis), streaming it to its stream, and save it."""
    generation.reply_generate(message_id=message_id, stream_token=stream_token)
