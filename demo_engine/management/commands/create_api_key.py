"""`python manage.py create_api_key NAME`: a key for the HTTP API (`/v1/`), printed once and stored hashed."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from demo_engine.api import services


class Command(BaseCommand):
    help = "Create an API key for the OpenAI-compatible HTTP API and print it (it is shown only this once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="who or what uses the key")
        parser.add_argument("--requests-per-minute", type=int, default=None, help="per-key rate limit (default 60)")

    def handle(self, *args, name: str, requests_per_minute: int | None, **options) -> None:
        if requests_per_minute is not None and requests_per_minute < 1:
            raise CommandError("--requests-per-minute must be at least 1")
        try:
            api_key, secret = services.api_key_create(name=name, requests_per_minute=requests_per_minute)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(
            f"Created API key {api_key.name!r} ({api_key.requests_per_minute} requests/minute). "
            "It is shown only this once; only its hash is stored:"
        )
        self.stdout.write(secret)
