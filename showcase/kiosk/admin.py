"""Staff set each screen up here: idle time, the attract loop's pages, the QR code; revoke or re-key its URL."""

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from showcase.kiosk import services
from showcase.kiosk.models import KioskScreen


@admin.register(KioskScreen)
class KioskScreenAdmin(admin.ModelAdmin):
    list_display = ("name", "active", "idle_seconds", "qr_enabled", "attract_compare", "attract_demo",
                    "attract_questions", "attract_recent", "created_at")  # fmt: skip
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "qr_enabled")
    search_fields = ("name",)
    fields = ("name", "screen_url", "idle_seconds", "attract_slide_seconds", "attract_compare", "attract_demo",
              "attract_questions", "attract_recent", "qr_enabled", "created_at", "revoked_at")  # fmt: skip
    readonly_fields = ("screen_url", "created_at", "revoked_at")
    actions = ["revoke", "rotate_secret"]

    @admin.display(boolean=True, description=_("active"))
    def active(self, screen: KioskScreen) -> bool:
        return screen.is_active

    @admin.display(description=_("screen URL"))
    def screen_url(self, screen: KioskScreen) -> str:
        if screen.pk is None:
            return _("shown once the screen is saved")
        if not screen.is_active:
            return _("revoked")
        return format_html('<a href="{0}" target="_blank" rel="noopener">{0}</a>', screen.get_absolute_url())

    @admin.action(description=_("Revoke the selected screens (their URL answers 404)"), permissions=["change"])
    def revoke(self, request, queryset) -> None:
        for screen in queryset:
            services.kiosk_screen_revoke(screen=screen)
        self.message_user(request, _("%(count)d screen(s) revoked.") % {"count": queryset.count()})

    @admin.action(description=_("Give the selected screens a new secret URL"), permissions=["change"])
    def rotate_secret(self, request, queryset) -> None:
        for screen in queryset:
            services.kiosk_screen_rotate_secret(screen=screen)
        self.message_user(request, _("%(count)d screen(s) have a new URL.") % {"count": queryset.count()})
