"""`python manage.py create_kiosk NAME`: a kiosk screen, and its secret URL in each language."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.urls import translate_url
from django.utils import translation

from showcase.kiosk import services


class Command(BaseCommand):
    help = "Create a kiosk screen for the booth and print its secret URL."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--idle-seconds", type=int, default=90, help="idle time before the screen clears (90)")
        parser.add_argument("--slide-seconds", type=int, default=12, help="seconds per attract loop page (12)")
        parser.add_argument("--no-qr", action="store_true", help="no 'continue on your phone' QR code")
        parser.add_argument("--base-url", default="", help="the site's address, e.g. http://192.168.1.20:8000")

    def handle(self, *args, name: str, idle_seconds: int, slide_seconds: int, no_qr: bool, base_url: str,
               **options) -> None:  # fmt: skip
        try:
            screen = services.kiosk_screen_create(name=name, idle_seconds=idle_seconds, qr_enabled=not no_qr,
                                                  attract_slide_seconds=slide_seconds)  # fmt: skip
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        base = (base_url or settings.KIOSK_PUBLIC_BASE_URL).rstrip("/")
        with translation.override(settings.LANGUAGE_CODE):
            path = screen.get_absolute_url()
        self.stdout.write(base + path)
        for code, _name in settings.LANGUAGES[1:]:
            self.stderr.write(f"  {code}: {base}{translate_url(path, code)}")
