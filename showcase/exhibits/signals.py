"""Any change to exhibit content, from the admin, a service or the loader, makes every cached public page stale."""

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from showcase.exhibits import models
from showcase.exhibits.page_cache import bump_content_version

CONTENT_MODELS = [
    models.Conference, models.Category, models.Exhibitor, models.Product, models.Hardware, models.AISystem,
    models.Source, models.Claim, models.Startup, models.Investor, models.Pitch,
]  # fmt: skip


def _content_changed(**kwargs) -> None:
    # After commit: a page rendered between the save and the commit must not be cached as the new version.
    transaction.on_commit(bump_content_version)


for _model in CONTENT_MODELS:
    post_save.connect(_content_changed, sender=_model, dispatch_uid=f"exhibits-save-{_model.__name__}")
    post_delete.connect(_content_changed, sender=_model, dispatch_uid=f"exhibits-delete-{_model.__name__}")
for _through in (models.Exhibitor.categories.through, models.Pitch.investors.through):
    m2m_changed.connect(_content_changed, sender=_through, dispatch_uid=f"exhibits-m2m-{_through.__name__}")
