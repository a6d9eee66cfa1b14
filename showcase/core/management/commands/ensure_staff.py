"""Create the first staff account from environment variables, once. There is never a default password."""

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create a superuser from SHOWCASE_ADMIN_USERNAME / SHOWCASE_ADMIN_PASSWORD / SHOWCASE_ADMIN_EMAIL."

    def handle(self, *args: object, **options: object) -> None:
        username = os.environ.get("SHOWCASE_ADMIN_USERNAME")
        password = os.environ.get("SHOWCASE_ADMIN_PASSWORD")
        email = os.environ.get("SHOWCASE_ADMIN_EMAIL", "")
        if not username:
            self.stdout.write("No SHOWCASE_ADMIN_USERNAME set: no staff account created.")
            return
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists():
            self.stdout.write(f"Staff account {username!r} already exists; left unchanged.")
            return
        if not password:
            raise CommandError("SHOWCASE_ADMIN_PASSWORD must be set together with SHOWCASE_ADMIN_USERNAME")
        try:
            validate_password(password, user_model(username=username, email=email))
        except ValidationError as exc:
            raise CommandError(f"SHOWCASE_ADMIN_PASSWORD is too weak: {' '.join(exc.messages)}") from None
        user_model.objects.create_superuser(username=username, email=email, password=password)
        self.stdout.write(f"Staff account {username!r} created.")
