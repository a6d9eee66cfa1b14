from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BoothConfig(AppConfig):
    name = "demo_engine.booth"
    label = "booth"
    verbose_name = _("Booth assistant")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from demo_engine.booth import signals  # noqa: F401  (connects the content signals)
