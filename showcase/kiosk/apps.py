"""The booth's own screens: kiosk mode (full screen, idle reset, attract loop, continue on your phone)."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class KioskConfig(AppConfig):
    name = "showcase.kiosk"
    label = "kiosk"
    verbose_name = _("Kiosk screens")
