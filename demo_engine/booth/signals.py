"""Published content reaches the booth's index once the transaction commits: a removal (unpublished, deleted, or
now under a draft) at once, here, since it embeds nothing; an addition or change in a Celery task on the `default`
queue, because embedding belongs in a worker, never in the web process. One task per transaction, however many rows
the admin saved (an exhibitor and its inline products are one save for staff)."""

from __future__ import annotations

import logging

from django.db import connection, transaction
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_delete, post_save

from showcase.exhibits import models as content
from showcase.exhibits.models import Publishable

logger = logging.getLogger(__name__)

INDEXED_MODELS = [
    content.Conference, content.Exhibitor, content.Product, content.Hardware, content.AISystem, content.Claim,
    content.Startup, content.Investor, content.Pitch,
]  # fmt: skip
# Records that quote another and disappear with it: a product with its exhibitor, a pitch with its start-up.
DEPENDENTS = {"exhibitor": ("products", "product"), "startup": ("pitches", "pitch"), "aisystem": ("claims", "claim")}
_PENDING_ATTRIBUTE = "_booth_index_pending"
# Off only where a caller rebuilds the whole index itself afterwards (the eval's throw-away database).
INDEX_ON_COMMIT = True


def _pending() -> dict[str, set]:
    """What the open transaction changed, per database connection (so per thread)."""
    pending = getattr(connection, _PENDING_ATTRIBUTE, None)
    if pending is None:
        pending = {"index": set(), "remove": set()}
        setattr(connection, _PENDING_ATTRIBUTE, pending)
    return pending


def _after_commit() -> None:
    # Registered by every change (a rolled-back transaction drops its own callbacks; outside a transaction it runs
    # at once): the first to run flushes everything pending, the others find nothing left.
    transaction.on_commit(_flush)


def _flush() -> None:
    from demo_engine.booth import index, passages, tasks

    pending = getattr(connection, _PENDING_ATTRIBUTE, None) or {"index": set(), "remove": set()}
    setattr(connection, _PENDING_ATTRIBUTE, None)
    for key in sorted(pending["remove"]):
        kind, pk = key.split(":")
        try:
            # Left over from a rolled-back transaction, a removal may no longer hold: look at the record as it is.
            if passages.passage_for(kind=kind, pk=int(pk)) is None:
                index.passage_remove(record_key=key)
        except Exception:  # the index lags until the task or a rebuild; a content save must not fail for it
            logger.exception("could not remove %s from the booth index", key)
    if pending["index"]:
        try:
            tasks.index_records.apply_async(args=[sorted(pending["index"])], queue="default")
        except Exception:
            logger.exception("could not queue the booth indexing of %s", sorted(pending["index"]))


def _queue(instance: Model, *, gone: bool = False) -> None:
    from demo_engine.booth.passages import related_keys

    kind = instance._meta.model_name
    pending = _pending()
    if isinstance(instance, Publishable):
        if gone or not instance.is_published:
            pending["remove"].add(f"{kind}:{instance.pk}")
            if kind in DEPENDENTS and not gone:
                attribute, dependent_kind = DEPENDENTS[kind]
                for pk in getattr(instance, attribute).values_list("pk", flat=True):
                    pending["remove"].add(f"{dependent_kind}:{pk}")
        else:
            pending["index"].add((kind, instance.pk))
    for related in related_keys(instance):
        pending["index"].add(related)
    _after_commit()


def _saved(sender, instance: Model, **kwargs) -> None:
    if kwargs.get("raw") or not INDEX_ON_COMMIT:
        return  # fixtures loading: a rebuild indexes them
    _queue(instance)


def _deleted(sender, instance: Model, **kwargs) -> None:
    if not INDEX_ON_COMMIT:
        return
    _queue(instance, gone=True)


def _category_saved(sender, instance: content.Category, **kwargs) -> None:
    if not INDEX_ON_COMMIT:
        return
    pending = _pending()
    for pk in instance.exhibitors.values_list("pk", flat=True):
        pending["index"].add(("exhibitor", pk))
    _after_commit()


def _m2m_changed(sender, instance: Model, action: str, pk_set=None, model=None, **kwargs) -> None:
    if action not in ("post_add", "post_remove", "post_clear") or not INDEX_ON_COMMIT:
        return
    _queue(instance)
    from demo_engine.booth.passages import KINDS

    if model is not None and pk_set and model._meta.model_name in KINDS:
        for pk in pk_set:
            _pending()["index"].add((model._meta.model_name, pk))
        _after_commit()


for _model in [*INDEXED_MODELS, content.Source]:
    post_save.connect(_saved, sender=_model, dispatch_uid=f"booth-save-{_model.__name__}")
    post_delete.connect(_deleted, sender=_model, dispatch_uid=f"booth-delete-{_model.__name__}")
post_save.connect(_category_saved, sender=content.Category, dispatch_uid="booth-save-Category")
for _through in (content.Exhibitor.categories.through, content.Pitch.investors.through):
    m2m_changed.connect(_m2m_changed, sender=_through, dispatch_uid=f"booth-m2m-{_through.__name__}")
