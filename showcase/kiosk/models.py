"""A kiosk screen: one of the booth's own screens, reached at a secret URL, with its own settings."""

import secrets

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


def new_secret() -> str:
    return secrets.token_urlsafe(24)


class KioskScreen(models.Model):
    """A named screen at the booth. Two screens can differ (idle time, attract pages, QR code); each has its own
    secret URL, so a visitor who reads one URL off the screen cannot open another screen's mode elsewhere."""

    name = models.CharField(_("name"), max_length=80, unique=True)
    # The only thing that opens the kiosk: a wrong or revoked secret answers 404.
    secret = models.CharField(_("secret"), max_length=64, unique=True, default=new_secret, editable=False)
    idle_seconds = models.PositiveIntegerField(
        _("idle time (seconds)"),
        default=90,
        validators=[MinValueValidator(5), MaxValueValidator(3600)],
        help_text=_(
            "After this long without a touch or a key, the screen clears the conversation and starts the attract loop."
        ),  # fmt: skip
    )
    attract_compare = models.BooleanField(_("attract loop: live comparison"), default=True)
    attract_demo = models.BooleanField(_("attract loop: this demo's live figures"), default=True)
    attract_questions = models.BooleanField(_("attract loop: suggested questions"), default=True)
    attract_recent = models.BooleanField(
        _("attract loop: questions asked at this screen"),
        default=False,
        help_text=_(
            "Recent questions from this screen's conversations; staff can hide a conversation, and "
            "flagged ones are never shown."
        ),  # fmt: skip
    )
    attract_slide_seconds = models.PositiveIntegerField(
        _("seconds per attract page"), default=12, validators=[MinValueValidator(3), MaxValueValidator(300)]
    )
    qr_enabled = models.BooleanField(
        _("'continue on your phone' QR code"),
        default=True,
        help_text=_("A single-use link, valid for a few minutes, that moves the conversation to a visitor's phone."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("kiosk screen")
        verbose_name_plural = _("kiosk screens")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("kiosk:screen", kwargs={"secret": self.secret})

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def attract_pages(self) -> list[str]:
        """The attract loop's pages in order, as the kiosk's script names them."""
        chosen = [("compare", self.attract_compare), ("demo", self.attract_demo),
                  ("questions", self.attract_questions), ("recent", self.attract_recent)]  # fmt: skip
        return [name for name, on in chosen if on] or ["questions"]
