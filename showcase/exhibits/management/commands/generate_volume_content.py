"""`manage.py generate_volume_content`: WAIC's 800 exhibitors and 3,000 products, as examples, for the benchmark."""

from django.core.management.base import BaseCommand

from showcase.exhibits import services


class Command(BaseCommand):
    help = "Add published example exhibitors and products in bulk (load testing only; not for a real booth)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--exhibitors", type=int, default=800)
        parser.add_argument("--products", type=int, default=3000)

    def handle(self, *args, exhibitors: int, products: int, **options) -> None:
        made_exhibitors, made_products = services.exhibitor_volume_generate(exhibitors=exhibitors, products=products)
        self.stdout.write(f"created {made_exhibitors} exhibitors and {made_products} products")
