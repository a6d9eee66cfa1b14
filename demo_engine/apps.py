"""The chat app: conversations, the socket that streams replies, and the Celery tasks that run the engine."""

from django.apps import AppConfig


class DemoEngineConfig(AppConfig):
    name = "demo_engine"
    verbose_name = "Chat demo"
