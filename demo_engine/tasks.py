"""Celery tasks of the chat, on the `inference` queue. Thin: take an id, call the service.

The web process imports this module to send a task: what a task runs (the engine, the booth's retrieval, and torch on
the engine's PyTorch paths) is imported inside it, so a web process never loads them (measured with torch: 285 MB of
RSS against 94 MB without it).
"""

from celery import shared_task
from celery.signals import worker_ready


@worker_ready.connect
def _on_worker_ready(**_kwargs: object) -> None:
    from demo_engine import runtime

    # With the threads pool the tasks run in this process: the engine loads here, once, after start-up.
    runtime.start_worker_runtime()


@shared_task(name="demo_engine.tasks.generate_reply", ignore_result=True)
def generate_reply(message_id: int, stream_token: str) -> None:
    """Generate the reply `message_id` (named `stream_token` in Redis), streaming it to its stream, and save it."""
    from demo_engine import generation

    generation.reply_generate(message_id=message_id, stream_token=stream_token)
