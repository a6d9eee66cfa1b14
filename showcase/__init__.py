"""The WAIC Showcase Django project: settings, URLs, ASGI entry, the Celery app, and the content apps."""

from showcase.celery import app as celery_app

__all__ = ["celery_app"]
