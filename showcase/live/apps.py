"""Live pages: the training-cost comparison (`/compare/`) and the demo's own live figures. The pages read exhibit
content through selectors; they change without a reload over `/ws/live/` (showcase.live.consumers)."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LiveConfig(AppConfig):
    name = "showcase.live"
    label = "live"
    verbose_name = _("Live pages")

    def ready(self) -> None:
        from showcase.live import signals  # noqa: F401 - publishes content changes to open pages after commit
