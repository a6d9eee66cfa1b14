"""Celery tasks of the chat, on the `inference` queue. Thin: take an id, call the service."""

from celery import shared_task
from celery.signals import worker_ready

from demo_engine import generation, runtime


@worker_ready.connect
def _on_worker_ready(**_kwargs: object) -> None:
    # With the threads pool the tasks run in this process: the engine loads here, once, after start-up.
    runtime.start_worker_runtime()


@shared_task(name="demo_engine.tasks.generate_reply", ignore_result=True)
def generate_reply(message_id: int) -> None:
    """Generate the reply `message_id`, streaming it to its Redis Stream, and save it."""
    generation.reply_generate(message_id=message_id)
