"""What the site knows about itself: the identity of this deployment."""

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _


class SiteIdentity(models.Model):
    """One row: this deployment's id, created with its database. Every key the site writes to Redis lives under it
    (see `showcase.core.shared_redis`), so two sites on one Redis, or a reset database beside a Redis that kept its
    keys, never read each other's replies, flags or pages."""

    site_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("site identity")
        verbose_name_plural = _("site identity")

    def __str__(self) -> str:
        return str(self.site_id)
