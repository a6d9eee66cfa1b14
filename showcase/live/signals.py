"""A save or delete of what the comparison shows (AI systems, their sources and claims, hardware) reaches open
comparison pages once the transaction commits: one event per transaction, however many rows the admin saved
(an AI system and its inline sources are one save for staff)."""

from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save

from showcase.exhibits import models
from showcase.live import services

COMPARED_MODELS = [models.AISystem, models.Source, models.Claim, models.Hardware]

# Per database connection (so per thread): the models changed in the transaction still open.
_PENDING_ATTRIBUTE = "_live_compare_changed_models"


def _publish_pending() -> None:
    changed = getattr(connection, _PENDING_ATTRIBUTE, None) or set()
    setattr(connection, _PENDING_ATTRIBUTE, None)
    if changed:
        services.content_changed_publish(models=sorted(changed))


def _compared_content_changed(sender, **kwargs) -> None:
    pending = getattr(connection, _PENDING_ATTRIBUTE, None)
    if pending is None:
        pending = set()
        setattr(connection, _PENDING_ATTRIBUTE, pending)
    pending.add(sender._meta.model_name)
    # Every save registers the callback (a rolled-back transaction drops its own); the first to run after the
    # commit publishes everything pending and the rest find nothing left. The exhibits app connected its page-cache
    # invalidation first, so the cached pages are already stale when a page fetches itself on this event.
    transaction.on_commit(_publish_pending)


for _model in COMPARED_MODELS:
    post_save.connect(_compared_content_changed, sender=_model, dispatch_uid=f"live-save-{_model.__name__}")
    post_delete.connect(_compared_content_changed, sender=_model, dispatch_uid=f"live-delete-{_model.__name__}")
