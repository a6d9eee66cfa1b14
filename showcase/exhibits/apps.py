"""The exhibit content: the conference, exhibitors and their products, AI systems with their training cost and
hardware, start-ups, investors and pitch slots. Staff edit it in the admin; visitors read it on public pages."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ExhibitsConfig(AppConfig):
    name = "showcase.exhibits"
    label = "exhibits"
    verbose_name = _("Exhibits")

    def ready(self) -> None:
        from showcase.exhibits import signals  # noqa: F401 - connects the page-cache invalidation
