"""`python manage.py redis_prefix`: print this deployment's Redis namespace (every key the site writes starts
with it)."""

from django.core.management.base import BaseCommand

from showcase.core.shared_redis import redis_prefix


class Command(BaseCommand):
    help = "Print this deployment's Redis key prefix (SHOWCASE_REDIS_PREFIX, else one derived from the database)."

    def handle(self, *args, **options) -> None:
        self.stdout.write(redis_prefix())
